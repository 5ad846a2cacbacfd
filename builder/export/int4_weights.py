"""4-bit weights in an int8 graph: half the download, the same int8 arithmetic, on every backend.

The dynamic-int8 graph (``optimize.quantize_int8``) keeps its ``MatMulInteger`` nodes; only the way
their weights are stored changes. Each weight matrix is quantized again from the fp32 graph, to 4
bits per output channel, with the scale that minimises the squared error (a clipping search: the
largest |w| rarely deserves a level of its own), and stored two weights a byte in a uint8
initializer (each value v as the nibble v + 8). A few plain ops of the graph's own opset (Cast, Div,
Mul, Sub, Reshape, Concat) unpack it into the int8 weight the MatMul reads; every input of them is
a constant, so onnxruntime folds them when it creates the session, natively and in onnxruntime-web
(WASM and WebGPU) alike, and inference runs the int8 graph's kernels at the int8 graph's speed.
(The first version stored ONNX ``INT4`` tensors with a ``Cast``: opset 21, which onnxruntime-web's
WebGPU build and transformers.js cannot load. onnxruntime's own 4-bit format, ``MatMulNBits``,
dequantizes to float on every run: 5x slower than int8 in onnxruntime-web's WASM build,
docs/BENCHMARKS.md.)

The word-embedding table, most of a small BERT's bytes, goes to 4 bits per row, with one scale per
token gathered next to its row. |w| <= 8 bounds every u8 x s4 pair sum by 2 x 255 x 8 = 4,080, far
inside the int16 sums of x86 CPUs without VNNI (``int8_safety`` reads the unpacked values).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BuildError

BITS = 4
QMIN, QMAX = -(1 << (BITS - 1)), (1 << (BITS - 1)) - 1  # -8 .. 7
CLIP_RATIOS = np.linspace(0.5, 1.0, 26)


def mse_scales(w: np.ndarray) -> np.ndarray:
    """Symmetric 4-bit scales per column of `w` ([rows, columns]) that minimise the squared error."""
    w = np.asarray(w, dtype=np.float32)
    amax = np.abs(w).max(axis=0)
    amax = np.where(amax > 0, amax, 1.0)
    best_scale, best_err = None, None
    for ratio in CLIP_RATIOS:
        scale = amax * ratio / QMAX
        err = ((np.clip(np.round(w / scale), QMIN, QMAX) * scale - w) ** 2).sum(axis=0)
        if best_err is None:
            best_scale, best_err = scale, err
        else:
            better = err < best_err
            best_scale, best_err = np.where(better, scale, best_scale), np.where(better, err, best_err)
    return best_scale.astype(np.float32)


def quantize_columns(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 array of 4-bit values, per-column scales) for `w` ([rows, columns])."""
    scale = mse_scales(w)
    return np.clip(np.round(w / scale), QMIN, QMAX).astype(np.int8), scale


OFFSET = -QMIN  # a stored nibble is the value + 8: 0 .. 15


def pack_nibbles(q: np.ndarray) -> np.ndarray:
    """`q`'s values (int8 within -8..7), flattened, as uint8 bytes of two nibbles (v + 8): the first
    value of each pair in the low nibble; an odd count leaves the last high nibble 0."""
    nibbles = (q.astype(np.int16).reshape(-1) + OFFSET).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return nibbles[0::2] | (nibbles[1::2] << 4)


def unpack_nibbles(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of `pack_nibbles` (what the graph's unpack ops compute)."""
    pairs = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(-1)[: int(np.prod(shape))]
    return (pairs.astype(np.int16) - OFFSET).astype(np.int8).reshape(shape)


class _Unpacker:
    """Adds packed weights to a graph: the uint8 initializer and the constant ops that turn it back
    into an int8 tensor (folded by onnxruntime at session creation)."""

    SHARED = {"sixteen": np.array(16, np.int32), "offset": np.array(OFFSET, np.int32), "column": np.array([-1, 1], np.int64),
              "flat": np.array([-1], np.int64), "start": np.array([0], np.int64)}

    def __init__(self, graph: "_Graph") -> None:
        self.graph = graph
        self.nodes: list = []

    def const(self, key: str) -> str:
        """The name of the shared constant `key` (added to the graph on first use)."""
        from onnx import numpy_helper

        name = f"int4_unpack_{key}"
        if name not in self.graph.inits:
            self.graph.add_init(numpy_helper.from_array(self.SHARED[key], name))
        return name

    def add(self, base: str, q: np.ndarray, out: str) -> None:
        """Store `q` (int8 within -8..7) packed as ``{base}_packed`` and compute it into `out`."""
        from onnx import TensorProto, helper, numpy_helper

        p = f"{base}_packed"
        c = {key: self.const(key) for key in ("sixteen", "offset", "column", "flat")}
        self.graph.add_init(numpy_helper.from_array(pack_nibbles(q), p))
        self.graph.add_init(numpy_helper.from_array(np.array(q.shape, np.int64), f"{p}_shape"))
        node = helper.make_node
        self.nodes += [
            node("Cast", [p], [f"{p}_i32"], to=TensorProto.INT32, name=f"{p}_to_int32"),
            node("Div", [f"{p}_i32", c["sixteen"]], [f"{p}_high"], name=f"{p}_high"),
            node("Mul", [f"{p}_high", c["sixteen"]], [f"{p}_high16"], name=f"{p}_high16"),
            node("Sub", [f"{p}_i32", f"{p}_high16"], [f"{p}_low"], name=f"{p}_low"),
            node("Reshape", [f"{p}_low", c["column"]], [f"{p}_low_col"], name=f"{p}_low_col"),
            node("Reshape", [f"{p}_high", c["column"]], [f"{p}_high_col"], name=f"{p}_high_col"),
            node("Concat", [f"{p}_low_col", f"{p}_high_col"], [f"{p}_pairs"], axis=1, name=f"{p}_pairs"),
            node("Reshape", [f"{p}_pairs", c["flat"]], [f"{p}_flat"], name=f"{p}_flat"),
        ]
        flat = f"{p}_flat"
        if q.size % 2:  # the padding nibble
            self.graph.add_init(numpy_helper.from_array(np.array([q.size], np.int64), f"{p}_size"))
            self.nodes.append(node("Slice", [flat, self.const("start"), f"{p}_size"], [f"{p}_trimmed"], name=f"{p}_trimmed"))
            flat = f"{p}_trimmed"
        self.nodes += [
            node("Reshape", [flat, f"{p}_shape"], [f"{p}_values"], name=f"{p}_values"),
            node("Sub", [f"{p}_values", c["offset"]], [f"{p}_signed"], name=f"{p}_signed"),
            node("Cast", [f"{p}_signed"], [out], to=TensorProto.INT8, name=f"{p}_to_int8"),
        ]


class _Graph:
    """The int8 graph being rewritten: initializers by name and each tensor's consumers."""

    def __init__(self, proto) -> None:
        self.proto = proto
        self.inits = {t.name: t for t in proto.graph.initializer}
        self.consumers: dict[str, list] = {}
        for node in proto.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def array(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        return numpy_helper.to_array(self.inits[name])

    def add_init(self, tensor) -> None:
        self.proto.graph.initializer.append(tensor)
        self.inits[tensor.name] = tensor

    def replace_init(self, name: str, tensor) -> None:
        self.proto.graph.initializer.remove(self.inits[name])
        self.proto.graph.initializer.append(tensor)
        self.inits[name] = tensor


def _fp32_weight(fp32: dict[str, np.ndarray], base: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    if base not in fp32:
        raise BuildError(f"{where}: the fp32 graph has no weight {base!r} for the int8 weight {base}_quantized")
    w = fp32[base]
    if w.shape != shape and w.T.shape == shape:  # a Gemm with transB, turned into MatMul by the quantizer
        w = w.T
    if w.shape != shape:
        raise BuildError(f"{where}: fp32 weight {base!r} is {w.shape}, its int8 form {shape}")
    return w.astype(np.float32)


def _matmul_weights(graph: _Graph, fp32: dict[str, np.ndarray], where: str, unpacker: _Unpacker) -> int:
    """Re-store every constant MatMulInteger weight packed in 4 bits; returns how many."""
    from onnx import numpy_helper

    done = 0
    for node in list(graph.proto.graph.node):
        if node.op_type != "MatMulInteger" or node.input[1] not in graph.inits:
            continue
        name = node.input[1]
        if not name.endswith("_quantized"):
            raise BuildError(f"{where}: MatMulInteger weight {name!r} does not follow onnxruntime's quantizer naming")
        base = name[: -len("_quantized")]
        zero = graph.array(f"{base}_zero_point") if f"{base}_zero_point" in graph.inits else np.zeros(1, np.int8)
        if np.any(zero != 0):
            raise BuildError(f"{where}: weight {base!r} has non-zero zero points; 4-bit storage needs symmetric int8")
        q, scale = quantize_columns(_fp32_weight(fp32, base, tuple(graph.inits[name].dims), where))
        graph.replace_init(f"{base}_scale", numpy_helper.from_array(scale.reshape(graph.array(f"{base}_scale").shape), f"{base}_scale"))
        graph.proto.graph.initializer.remove(graph.inits.pop(name))
        unpacker.add(base, q, name)
        done += 1
    return done


def _word_embeddings(graph: _Graph, fp32: dict[str, np.ndarray], where: str, unpacker: _Unpacker) -> str | None:
    """Re-store the largest 8-bit Gather table (the word embeddings) as 4-bit rows with per-row scales."""
    from onnx import TensorProto, helper, numpy_helper

    tables = [
        n for n in graph.proto.graph.node
        if n.op_type == "Gather" and n.input[0] in graph.inits and graph.inits[n.input[0]].data_type in (TensorProto.INT8, TensorProto.UINT8)
        and n.input[0].endswith("_quantized") and len(graph.consumers.get(n.output[0], [])) == 1
        and graph.consumers[n.output[0]][0].op_type == "DequantizeLinear"
    ]
    if not tables:
        return None
    gather = max(tables, key=lambda n: int(np.prod(graph.inits[n.input[0]].dims)))
    name = gather.input[0]
    base = name[: -len("_quantized")]
    q, scale = quantize_columns(_fp32_weight(fp32, base, tuple(graph.inits[name].dims), where).T)  # rows as columns
    graph.proto.graph.initializer.remove(graph.inits.pop(name))
    unpacker.add(base, q.T, name)
    row_scale = f"{base}_row_scale"
    graph.proto.graph.initializer.append(numpy_helper.from_array(scale, row_scale))
    axes = f"{base}_row_scale_axes"
    graph.proto.graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), axes))
    dq = graph.consumers[gather.output[0]][0]
    replacement = [
        helper.make_node("Cast", [gather.output[0]], [f"{base}_rows_f"], to=TensorProto.FLOAT, name=f"{base}_rows_to_float"),
        helper.make_node("Gather", [row_scale, gather.input[1]], [f"{base}_scales"], name=f"{base}_gather_scales"),
        helper.make_node("Unsqueeze", [f"{base}_scales", axes], [f"{base}_scales_3d"], name=f"{base}_scales_unsqueeze"),
        helper.make_node("Mul", [f"{base}_rows_f", f"{base}_scales_3d"], [dq.output[0]], name=f"{base}_dequantize"),
    ]
    nodes = list(graph.proto.graph.node)
    at = nodes.index(dq)
    nodes[at: at + 1] = replacement
    del graph.proto.graph.node[:]
    graph.proto.graph.node.extend(nodes)
    for unused in dq.input[1:]:  # the table's old scale and zero point
        if unused in graph.inits and graph.consumers.get(unused) == [dq]:
            graph.proto.graph.initializer.remove(graph.inits.pop(unused))
    return base


def store_int4(fp32_path: Path, int8_path: Path, dst: Path) -> dict[str, int | str | None]:
    """Write `dst`: the int8 graph at `int8_path` with its MatMulInteger weights and word embeddings
    stored in 4 bits, re-quantized from the fp32 graph at `fp32_path`. Returns what was converted."""
    import onnx
    from onnx import numpy_helper

    where = str(int8_path)
    fp32 = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32_path)).graph.initializer}
    proto = onnx.load(str(int8_path))
    graph = _Graph(proto)
    unpacker = _Unpacker(graph)
    matmuls = _matmul_weights(graph, fp32, where, unpacker)
    embeddings = _word_embeddings(graph, fp32, where, unpacker)
    if not matmuls:
        raise BuildError(f"{where}: no int8 MatMul weights to store in 4 bits")
    nodes = unpacker.nodes + list(proto.graph.node)  # the unpack ops read initializers only: first is topological
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(dst), save_as_external_data=False)
    return {"matmuls": matmuls, "embeddings": embeddings}
