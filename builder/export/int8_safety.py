"""Whether an int8 graph answers the same on every CPU: a proof from its weights, and two references.

On x86 CPUs without VNNI (AVX2 only: most laptops and servers), onnxruntime's u8×s8 integer GEMM
multiplies uint8 activations by int8 weights with ``vpmaddubsw``, which adds each pair of
products into a *saturating int16*. With 8-bit weights a pair can reach 2 × 255 × 127 = 64,770,
so those CPUs clip sums that VNNI CPUs, ARM and onnxruntime-web's WASM kernels (32-bit sums)
keep: the same file gives other logits (0.28 on MiniLM). A graph is CPU-independent when no pair
can leave int16: every integer GEMM either has uint8 weights (a kernel with no 16-bit pair sums)
or int8 weights small enough that 255 × (the two largest |w| of a column) ≤ 32,767, which 7-bit
weights (``reduce_range``: |w| ≤ 64, 32,640) guarantee.

* `pair_sum_bounds` / `require_no_saturation`: that proof, read from the graph's initializers;
* `exact_logits`: the graph run by ONNX's NumPy reference evaluator, whose integer sums are exact
  on any CPU: what every runtime must agree with;
* `emulated_cpu_logits`: onnxruntime itself on an emulated CPU (``qemu-x86_64 -cpu EPYC-Rome``:
  AVX2, no AVX-512, no VNNI), to show the AVX2 kernel's answers on a machine that has VNNI.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import BuildError

INT16_MAX = 32767
ACTIVATION_MAX = 255  # dynamic quantization feeds uint8 activations; also bounds |int8| (128)
AVX2_CPU = "EPYC-Rome"  # qemu's model of a Zen 2 EPYC: AVX2 and FMA, no AVX-512, no VNNI

# Integer GEMM ops and the index of their weight (B) input.
WEIGHT_INPUT = {
    "MatMulInteger": 1,
    "MatMulIntegerToFloat": 1,
    "DynamicQuantizeMatMul": 1,
    "QAttention": 1,
    "QLinearMatMul": 3,
    "QGemm": 3,
    "ConvInteger": 1,
    "QLinearConv": 3,
}


@dataclass(frozen=True)
class PairSumBound:
    """The largest |pair of products| one integer GEMM node can form; None when its kernel forms none."""

    node: str
    op: str
    weight: str
    weight_type: str
    bound: int | None

    @property
    def safe(self) -> bool:
        return self.bound is None or self.bound <= INT16_MAX

    def to_dict(self) -> dict:
        return {**asdict(self), "safe": self.safe}


def _load(model) -> "onnx.ModelProto":  # noqa: F821 - onnx is imported lazily
    import onnx

    return model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))


def pair_sum_bounds(model) -> list[PairSumBound]:
    """One `PairSumBound` per integer GEMM node of `model` (a path or an ``onnx.ModelProto``).

    The bound is kernel-agnostic: whichever two products of a weight column a kernel pairs, they
    cannot exceed 255 × the column's two largest |w|. A weight that is not a constant cannot be
    bounded and counts as unsafe (bound 2 × 255 × 128).
    """
    from onnx import numpy_helper

    proto = _load(model)
    inits = {t.name: t for t in proto.graph.initializer}
    producers = {out: n for n in proto.graph.node for out in n.output}
    out = []
    for node in proto.graph.node:
        index = WEIGHT_INPUT.get(node.op_type)
        if index is None or len(node.input) <= index:
            continue
        name = node.input[index]
        # A weight stored packed (int4_weights: unpacked by constant ops when the session is
        # created) is bounded by the values those ops compute.
        w = numpy_helper.to_array(inits[name]) if name in inits else constant_value(proto, inits, producers, name)
        if w is None:
            out.append(PairSumBound(node.name, node.op_type, name, "unknown", 2 * ACTIVATION_MAX * 128))
            continue
        # unpacked 4-bit values: named for the values they hold
        weight_type = "int4" if name not in inits and w.dtype == np.int8 and w.min() >= -8 and w.max() <= 7 else str(w.dtype)
        if w.dtype == np.uint8:
            out.append(PairSumBound(node.name, node.op_type, name, "uint8", None))
            continue
        mags = np.abs(w.astype(np.int32)).reshape(-1, w.shape[-1]) if w.ndim > 1 else np.abs(w.astype(np.int32))[:, None]
        top2 = np.sort(mags, axis=0)[-2:].sum(axis=0) if mags.shape[0] > 1 else mags[0]
        out.append(PairSumBound(node.name, node.op_type, name, weight_type, int(ACTIVATION_MAX * top2.max())))
    return out


def constant_value(proto, inits: dict, producers: dict, name: str) -> np.ndarray | None:
    """The value of tensor `name` when only initializers feed it (evaluated by ONNX's reference
    implementation, as onnxruntime folds it at session creation), else None."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    nodes, used, stack, seen = [], set(), [name], set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor == "":
            continue
        seen.add(tensor)
        if tensor in inits:
            used.add(tensor)
            continue
        node = producers.get(tensor)
        if node is None:  # a graph input
            return None
        nodes.append(node)
        stack.extend(node.input)
    order = {id(n): i for i, n in enumerate(proto.graph.node)}
    nodes = sorted({id(n): n for n in nodes}.values(), key=lambda n: order[id(n)])
    graph = onnx.helper.make_graph(nodes, "constant", [], [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None)],
                                   [inits[t] for t in sorted(used)])
    sub = onnx.helper.make_model(graph, opset_imports=list(proto.opset_import))
    return np.asarray(ReferenceEvaluator(sub).run(None, {})[0])


def require_no_saturation(model, where: str | Path) -> list[PairSumBound]:
    """`pair_sum_bounds`, raising `BuildError` (naming the nodes) if any pair could leave int16."""
    bounds = pair_sum_bounds(model)
    bad = [b for b in bounds if not b.safe]
    if bad:
        worst = max(bad, key=lambda b: b.bound or 0)
        raise BuildError(
            f"{where}: {len(bad)} of {len(bounds)} integer MatMuls can overflow int16 pair sums on x86 CPUs "
            f"without VNNI (worst: {worst.op} {worst.node!r}, weight {worst.weight} {worst.weight_type}, "
            f"|pair| up to {worst.bound:,} > {INT16_MAX:,}); quantize with 7-bit (reduce_range) or uint8 weights"
        )
    return bounds


def max_pair_sum(bounds: list[PairSumBound]) -> int | None:
    """The largest bound of `bounds` (None when no node forms 16-bit pairs)."""
    values = [b.bound for b in bounds if b.bound is not None]
    return max(values) if values else None


def _reference_ops() -> list[type]:
    """ONNX's reference evaluator has DequantizeLinear only from opset 19; ours are opset 17 graphs."""
    from onnx.reference.op_run import OpRun

    class DequantizeLinear(OpRun):
        op_domain = ""

        def _run(self, x, x_scale, x_zero_point=None, axis=None, block_size=None, output_dtype=None):  # noqa: ANN001
            zero = np.zeros((), x.dtype) if x_zero_point is None else x_zero_point
            if np.ndim(x_scale) == 1 and x.ndim > 1 and np.size(x_scale) > 1:
                shape = [1] * x.ndim
                shape[1 if axis is None else axis] = -1
                x_scale, zero = np.reshape(x_scale, shape), np.reshape(zero, shape)
            return ((x.astype(np.float32) - np.asarray(zero).astype(np.float32)) * x_scale).astype(np.float32),

    return [DequantizeLinear]


def exact_logits(model: str | Path, feeds: list[Mapping[str, np.ndarray]]) -> np.ndarray:
    """The first output of `model` for each feed dict, computed by ONNX's NumPy reference evaluator.

    Integer MatMuls there are exact (int32/int64 sums), so the result is the same on every CPU.
    Plain ONNX ops only (no com.microsoft contrib ops).
    """
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(_load(model), new_ops=_reference_ops())
    names = set(evaluator.input_names)
    return np.concatenate([np.asarray(evaluator.run(None, {k: v for k, v in feed.items() if k in names})[0]) for feed in feeds])


def qemu() -> str | None:
    """Path of ``qemu-x86_64`` (Debian's qemu-user) on an x86-64 host, else None."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    return shutil.which("qemu-x86_64")


_RUNNER = """
import json, sys
import numpy as np
import onnxruntime as ort
model, data = sys.argv[1], np.load(sys.argv[2])
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
names = {i.name for i in sess.get_inputs()}
count = int(data["count"])
out = [sess.run(None, {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(f"{i}/") and k.split("/", 1)[1] in names})[0]
       for i in range(count)]
np.save(sys.argv[3], np.concatenate(out))
"""


def emulated_cpu_logits(model: str | Path, feeds: list[Mapping[str, np.ndarray]], cpu: str = AVX2_CPU,
                        timeout: float = 600.0) -> np.ndarray:
    """The first output of `model` for each feed dict, from onnxruntime running under ``qemu-x86_64 -cpu CPU``.

    This Python and its onnxruntime run unchanged; only the CPU they see differs, so onnxruntime
    picks that CPU's kernels (for the default, the AVX2 u8×s8 kernel). Raises `BuildError` when
    qemu-user is missing or the run fails.
    """
    binary = qemu()
    if binary is None:
        raise BuildError("qemu-x86_64 not found (Debian: apt-get install qemu-user) or not an x86-64 host")
    with tempfile.TemporaryDirectory(prefix="intentkit-qemu-") as tmp:
        data = {"count": np.array(len(feeds))}
        for i, feed in enumerate(feeds):
            data.update({f"{i}/{k}": np.asarray(v) for k, v in feed.items()})
        np.savez(Path(tmp) / "feeds.npz", **data)
        out = Path(tmp) / "out.npy"
        proc = subprocess.run([binary, "-cpu", cpu, sys.executable, "-c", _RUNNER, str(model), str(Path(tmp) / "feeds.npz"), str(out)],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not out.is_file():
            lines = [line for line in proc.stderr.splitlines() if "TCG doesn't support" not in line]
            raise BuildError(f"onnxruntime under qemu-x86_64 -cpu {cpu} failed (exit {proc.returncode}): {' | '.join(lines[-3:])}")
        return np.load(out)


def cpu_flags() -> dict[str, object]:
    """This machine's CPU model and the flags that pick onnxruntime's int8 kernels (Linux /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name":
                model = value
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wanted = {"avx2": "avx2", "avx512f": "avx512f", "avx512_vnni": "avx512_vnni", "avx_vnni": "avx_vnni", "asimddp": "neon_dotprod"}
    have = {label: name in flags for name, label in wanted.items()}
    return {"model": model, "machine": platform.machine(), **have, "vnni": have["avx512_vnni"] or have["avx_vnni"]}


def describe_cpu(info: Mapping[str, object] | None = None) -> str:
    """One line: the CPU model and its AVX2 / AVX-512 / VNNI flags."""
    info = info or cpu_flags()
    marks = [name.upper().replace("_", "-") for name in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if info.get(name)]
    return f"{info.get('model')} ({', '.join(marks) or 'no AVX2'}{'' if info.get('vnni') else ', no VNNI'})"
