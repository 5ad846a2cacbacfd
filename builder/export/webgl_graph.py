"""A WebGL variant of the transformer tier: the fp32 graph rewritten for onnxruntime-web's WebGL backend.

ORT-web's WebGL backend (the ``onnxjs`` engine) cannot create a session for a standard BERT export
(../shared/PLATFORM.md): it has no ``LayerNormalization``, ``Erf``, ``Where``, ``Expand``,
``ConstantOfShape``, ``Range`` or int64, its ``ReduceSum`` stops at opset 12, it reads symbolic
dims as null and it fixes a session's input shape at its first run. So the exported fp32 graph
(role ``model_fp32``) is rewritten op by op, once per fixed sequence length ``L``:

* inputs ``input_ids`` and ``attention_mask`` become int32 ``[1, L]``; ``token_type_ids`` (always
  zero for one sentence) becomes a constant inside the graph;
* every shape computation is folded for that fixed shape (``Shape``, ``Gather``, ``Concat``,
  ``Slice``, ``Unsqueeze`` on shapes), so position ids and token-type rows become constants and
  every ``Reshape`` gets a constant target; constants become initializers (no ``Constant`` nodes);
* ``LayerNormalization`` -> ``ReduceMean, Sub, Mul, Add, Sqrt, Div``;
* ``Erf`` -> Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7) from ``Abs, Mul, Add, Div, Exp, Neg, Sub``;
  the sign comes from ``x / (|x| + 1e-30)``, so no ``Sign`` or ``Where``;
* ``ReduceSum`` (axes as an input since opset 13) -> ``ReduceMean`` (axes attribute) times the
  fixed count; ``Clip`` with a missing bound gets an explicit one (WebGL ignores a lone min);
* ``Pow`` with exponent 2 or 3 -> ``Mul``, 0.5 -> ``Sqrt`` (GLSL ``pow`` is undefined for negative
  bases); any other ``Pow`` is refused;
* the additive attention-mask constant ``-3.4e38`` (float32 min) becomes ``-1e4``: ``exp`` of
  either is exactly 0 in float32, and ``-1e4`` stays finite on GPUs that keep textures in fp16,
  where ``0 * -inf`` would be NaN.

One file per length, because a WebGL session serves one input shape: a ``dim_value`` 0 is a
wildcard only until the first run, and a length-agnostic graph would need position ids that
WebGL cannot compute (no ``Range``, ``CumSum``, dynamic ``Slice``). :func:`add_webgl_variant`
writes the files into a bundle as roles ``model_webgl_<L>``, checked against fp32 onnxruntime.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import BuildError

if TYPE_CHECKING:
    from ..bundle.writer import BundleDraft

DEFAULT_LENGTHS = (16, 64)
ROLE_PREFIX = "model_webgl_"
#: Every op the rewritten graph may contain: each is in ORT-web's WebGL op table (1.30,
#: ``WEBGL_OP_RESOLVE_RULES``) for opsets 13-17 (Clip 11+ with initializer bounds, ReduceMean
#: with an axes attribute, Unsqueeze 13+ with initializer axes).
WEBGL_OPS = frozenset(
    {"Abs", "Add", "Cast", "Clip", "Div", "Exp", "Gather", "Gemm", "MatMul", "Mul", "Neg", "ReduceMean",
     "Reshape", "Softmax", "Sqrt", "Sub", "Tanh", "Transpose", "Unsqueeze", "Squeeze", "Relu", "Sigmoid"}
)
OPSETS = range(13, 18)  # Softmax/Unsqueeze 13+ forms, ReduceMean with an axes attribute (< 18)
MAX_LOGIT_DIFF = 1e-3
IR_VERSION = 8
MASK_VALUE = -1e4
HUGE = 1e30
FLOAT_MAX = float(np.finfo(np.float32).max)
# Abramowitz & Stegun 7.1.26: erf(x) = 1 - (a1 t + ... + a5 t^5) exp(-x^2), t = 1 / (1 + p x), x >= 0.
AS_P = 0.3275911
AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
SIGN_EPS = 1e-30


def role_for(length: int) -> str:
    return f"{ROLE_PREFIX}{length}"


def path_for(length: int) -> str:
    return f"onnx/model_webgl_{length}.onnx"


def bucket_lengths(lengths: Iterable[int], max_length: int) -> tuple[int, ...]:
    """Sorted distinct pad lengths, each capped at `max_length` (the tier's truncation length)."""
    out = sorted({min(int(n), int(max_length)) for n in lengths})
    if not out:
        raise BuildError("no WebGL pad lengths given")
    if out[0] < 2:
        raise BuildError(f"WebGL pad lengths must be at least 2 ([CLS] and [SEP]), got {out[0]}")
    return tuple(out)


def parse_lengths(text: str) -> tuple[int, ...]:
    """``"16,32,64"`` -> (16, 32, 64); BuildError on anything else."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise BuildError(f"--lengths: expected whole numbers separated by commas, got {text!r}") from None
    if not values or any(v < 2 for v in values):
        raise BuildError(f"--lengths: expected whole numbers >= 2, got {text!r}")
    return values


# ------------------------------------------------------------------ the rewrite


class _Rewriter:
    """Folds and rewrites one graph (a copy) for a fixed [1, L] input."""

    def __init__(self, model, length: int) -> None:
        import onnx

        self.onnx = onnx
        self.model = model
        self.graph = model.graph
        self.length = length
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.consts: dict[str, np.ndarray] = {}
        self._names = 0

    # -- helpers
    def name(self, hint: str) -> str:
        self._names += 1
        return f"webgl/{hint}_{self._names}"

    def const(self, value: Any, hint: str = "c", dtype: Any = np.float32) -> str:
        name = self.name(hint)
        self.consts[name] = np.asarray(value, dtype=dtype)
        return name

    def node(self, op: str, inputs: Sequence[str], hint: str, out: str | None = None, **attrs: Any):
        out = out or self.name(hint)
        return self.onnx.helper.make_node(op, list(inputs), [out], **attrs)

    # -- steps
    def run(self):
        self.check_source()
        self.fix_inputs()
        self.take_constants()
        for _ in range(8):
            if not self.fold():
                break
        self.prune()
        self.rewrite()
        self.prune()
        self.finish()
        return self.model

    def check_source(self) -> None:
        foreign = sorted({f"{n.domain}.{n.op_type}" for n in self.graph.node if n.domain not in ("", "ai.onnx")})
        if foreign:
            raise BuildError(f"the fp32 graph uses non-standard ops {foreign}; export it again with plain ONNX ops")
        if self.opset not in OPSETS:
            raise BuildError(f"the fp32 graph is opset {self.opset}; the WebGL rewrite handles opsets {OPSETS.start}-{OPSETS.stop - 1}")
        names = {i.name for i in self.graph.input} - {init.name for init in self.graph.initializer}
        unknown = sorted(names - {"input_ids", "attention_mask", "token_type_ids"})
        if unknown or "input_ids" not in names or "attention_mask" not in names:
            raise BuildError(f"the fp32 graph has inputs {sorted(names)}; expected input_ids, attention_mask (token_type_ids optional)")
        if len(self.graph.output) != 1:
            raise BuildError(f"the fp32 graph has {len(self.graph.output)} outputs; expected one (logits)")

    def fix_inputs(self) -> None:
        TensorProto = self.onnx.TensorProto
        kept = []
        for inp in self.graph.input:
            if inp.name == "token_type_ids":
                self.consts["token_type_ids"] = np.zeros((1, self.length), dtype=np.int64)
                continue
            if inp.name in ("input_ids", "attention_mask"):
                kept.append(self.onnx.helper.make_tensor_value_info(inp.name, TensorProto.INT32, [1, self.length]))
            else:
                kept.append(inp)  # an initializer listed as an input (older exporters)
        del self.graph.input[:]
        self.graph.input.extend(kept)
        del self.graph.value_info[:]  # recomputed for the fixed shape
        out = self.graph.output[0]
        out.type.tensor_type.ClearField("shape")

    def take_constants(self) -> None:
        numpy_helper = self.onnx.numpy_helper
        for init in self.graph.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
        del self.graph.initializer[:]
        del self.graph.sparse_initializer[:]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Static shapes of the current graph's values (onnx shape inference on a weightless copy)."""
        onnx = self.onnx
        probe = onnx.ModelProto()
        probe.CopyFrom(self.model)
        graph = probe.graph
        del graph.initializer[:]
        # Small constants carry their values (shape inference propagates them); big ones only their shape.
        for name, value in self.consts.items():
            if value.size <= 64:
                graph.initializer.append(onnx.numpy_helper.from_array(value, name))
            else:
                graph.input.append(onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)))
        inferred = onnx.shape_inference.infer_shapes(probe, data_prop=True)
        out: dict[str, tuple[int, ...]] = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            t = vi.type.tensor_type
            if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
                out[vi.name] = tuple(d.dim_value for d in t.shape.dim)
        for name, value in self.consts.items():
            out[name] = tuple(value.shape)
        return out

    def evaluate(self, node) -> list[np.ndarray]:
        from onnx.reference import ReferenceEvaluator

        onnx = self.onnx
        ins = [i for i in node.input if i]
        graph = onnx.helper.make_graph(
            [node],
            "fold",
            [onnx.helper.make_tensor_value_info(i, onnx.helper.np_dtype_to_tensor_dtype(self.consts[i].dtype), list(self.consts[i].shape)) for i in ins],
            [onnx.helper.make_empty_tensor_value_info(o) for o in node.output],
        )
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", self.opset)])
        results = ReferenceEvaluator(model).run(None, {i: self.consts[i] for i in ins})
        return [np.asarray(r) for r in results]

    def fold(self) -> bool:
        """One pass of constant folding (Shape of a static value included); True if anything folded."""
        shapes = self.shapes()
        kept, changed = [], False
        for node in self.graph.node:
            ins = [i for i in node.input if i]
            if node.op_type == "Shape" and ins and ins[0] in shapes and not node.attribute:
                self.consts[node.output[0]] = np.asarray(shapes[ins[0]], dtype=np.int64)
                changed = True
                continue
            if node.op_type == "Constant" or (ins and all(i in self.consts for i in ins)):
                for name, value in zip(node.output, self.evaluate(node)):
                    self.consts[name] = value
                changed = True
                continue
            kept.append(node)
        del self.graph.node[:]
        self.graph.node.extend(kept)
        return changed

    def prune(self) -> None:
        """Drop nodes and constants that no output depends on."""
        needed = {o.name for o in self.graph.output}
        kept = []
        for node in reversed(self.graph.node):
            if any(o in needed for o in node.output):
                kept.append(node)
                needed.update(i for i in node.input if i)
        del self.graph.node[:]
        self.graph.node.extend(reversed(kept))
        self.consts = {k: v for k, v in self.consts.items() if k in needed}

    def rewrite(self) -> None:
        # BERT's additive mask: (1 - mask) * float32.min -> (1 - mask) * -1e4 (see the module notes).
        arithmetic = {i for n in self.graph.node if n.op_type in ("Mul", "Add", "Sub") for i in n.input}
        for name in arithmetic & set(self.consts):
            value = self.consts[name]
            if value.dtype == np.float32 and value.size == 1 and value.reshape(-1)[0] <= -HUGE:
                self.consts[name] = np.full_like(value, MASK_VALUE)
        shapes = self.shapes()
        nodes = []
        for node in self.graph.node:
            method = getattr(self, f"_rw_{node.op_type}", None)
            nodes.extend(method(node, shapes) if method else [node])
        del self.graph.node[:]
        self.graph.node.extend(nodes)

    def _attrs(self, node) -> dict[str, Any]:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def _rw_LayerNormalization(self, node, shapes):
        attrs = self._attrs(node)
        x, scale = node.input[0], node.input[1]
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if len(node.output) > 1 and any(node.output[1:]):
            raise BuildError("LayerNormalization with mean/inv-std outputs is not supported by the WebGL rewrite")
        rank = len(shapes.get(x, ())) or None
        axis = int(attrs.get("axis", -1))
        if rank is None and axis != -1:
            raise BuildError(f"LayerNormalization {node.name!r}: unknown input rank")
        axes = [-1] if axis == -1 else list(range(axis if axis >= 0 else rank + axis, rank))
        eps = self.const(float(attrs.get("epsilon", 1e-5)), "ln_eps")
        mean = self.node("ReduceMean", [x], "ln_mean", axes=axes, keepdims=1)
        d = self.node("Sub", [x, mean.output[0]], "ln_d")
        sq = self.node("Mul", [d.output[0], d.output[0]], "ln_sq")
        var = self.node("ReduceMean", [sq.output[0]], "ln_var", axes=axes, keepdims=1)
        ve = self.node("Add", [var.output[0], eps], "ln_ve")
        std = self.node("Sqrt", [ve.output[0]], "ln_std")
        norm = self.node("Div", [d.output[0], std.output[0]], "ln_norm")
        last = node.output[0]
        scaled = self.node("Mul", [norm.output[0], scale], "ln_scaled", out=None if bias else last)
        out = [mean, d, sq, var, ve, std, norm, scaled]
        if bias:
            out.append(self.node("Add", [scaled.output[0], bias], "ln_out", out=last))
        return out

    def _rw_Erf(self, node, shapes):
        y = node.input[0]
        n = self.node
        a = n("Abs", [y], "erf_abs")
        pa = n("Mul", [a.output[0], self.const(AS_P, "erf_p")], "erf_pa")
        den = n("Add", [pa.output[0], self.const(1.0, "erf_one")], "erf_den")
        t = n("Div", [self.const(1.0, "erf_one"), den.output[0]], "erf_t")
        out = [a, pa, den, t]
        acc = self.const(AS_A[4], "erf_a5")
        for coef in reversed(AS_A[:4]):  # Horner: a1 + t (a2 + t (a3 + t (a4 + t a5)))
            m = n("Mul", [t.output[0], acc], "erf_m")
            s = n("Add", [m.output[0], self.const(coef, "erf_a")], "erf_s")
            out += [m, s]
            acc = s.output[0]
        poly = n("Mul", [t.output[0], acc], "erf_poly")
        a2 = n("Mul", [a.output[0], a.output[0]], "erf_a2")
        neg = n("Neg", [a2.output[0]], "erf_neg")
        ex = n("Exp", [neg.output[0]], "erf_exp")
        pe = n("Mul", [poly.output[0], ex.output[0]], "erf_pe")
        mag = n("Sub", [self.const(1.0, "erf_one"), pe.output[0]], "erf_mag")  # erf(|y|)
        den2 = n("Add", [a.output[0], self.const(SIGN_EPS, "erf_eps")], "erf_den2")
        sign = n("Div", [y, den2.output[0]], "erf_sign")
        res = n("Mul", [sign.output[0], mag.output[0]], "erf", out=node.output[0])
        return out + [poly, a2, neg, ex, pe, mag, den2, sign, res]

    def _reduce_axes(self, node, shapes) -> tuple[list[int], int]:
        attrs = self._attrs(node)
        if len(node.input) > 1 and node.input[1]:
            if node.input[1] not in self.consts:
                raise BuildError(f"{node.op_type} {node.name!r}: its axes are computed at run time")
            axes = [int(v) for v in self.consts[node.input[1]].reshape(-1)]
        else:
            axes = [int(v) for v in attrs.get("axes", [])]
        if not axes and attrs.get("noop_with_empty_axes", 0):
            raise BuildError(f"{node.op_type} {node.name!r}: noop_with_empty_axes is not supported")
        return axes, int(attrs.get("keepdims", 1))

    def _rw_ReduceSum(self, node, shapes):
        x = node.input[0]
        if x not in shapes:
            raise BuildError(f"ReduceSum {node.name!r}: the input shape is not static")
        axes, keepdims = self._reduce_axes(node, shapes)
        dims = shapes[x]
        count = math.prod(dims[a] for a in axes) if axes else math.prod(dims)
        mean = self.node("ReduceMean", [x], "rsum_mean", axes=axes, keepdims=keepdims) if axes else self.node("ReduceMean", [x], "rsum_mean", keepdims=keepdims)
        scaled = self.node("Mul", [mean.output[0], self.const(float(count), "rsum_n")], "rsum", out=node.output[0])
        return [mean, scaled]

    def _rw_ReduceMean(self, node, shapes):
        if len(node.input) > 1 and node.input[1]:  # opset 18 form (not reached: opsets <= 17)
            axes, keepdims = self._reduce_axes(node, shapes)
            return [self.node("ReduceMean", [node.input[0]], "rmean", out=node.output[0], axes=axes, keepdims=keepdims)]
        return [node]

    def _rw_Clip(self, node, shapes):
        bounds = []
        for i, default in ((1, -FLOAT_MAX), (2, FLOAT_MAX)):
            name = node.input[i] if len(node.input) > i else ""
            if not name:
                name = self.const(default, "clip_bound")
            elif name not in self.consts:
                raise BuildError(f"Clip {node.name!r}: its bounds are computed at run time (WebGL needs constants)")
            bounds.append(name)
        return [self.onnx.helper.make_node("Clip", [node.input[0], *bounds], list(node.output), name=node.name)]

    def _rw_Pow(self, node, shapes):
        x, e = node.input
        if e not in self.consts or self.consts[e].size != 1:
            raise BuildError(f"Pow {node.name!r}: the exponent is not a constant scalar; GLSL pow() is undefined for negative bases")
        p = float(self.consts[e].reshape(-1)[0])
        if p == 2.0:
            return [self.node("Mul", [x, x], "pow2", out=node.output[0])]
        if p == 3.0:
            sq = self.node("Mul", [x, x], "pow_sq")
            return [sq, self.node("Mul", [sq.output[0], x], "pow3", out=node.output[0])]
        if p == 0.5:
            return [self.node("Sqrt", [x], "pow_half", out=node.output[0])]
        raise BuildError(f"Pow {node.name!r} with exponent {p:g}: no WebGL-safe replacement (GLSL pow() is undefined for negative bases)")

    def _rw_Cast(self, node, shapes):
        to = int(self._attrs(node).get("to", 0))
        if to == self.onnx.TensorProto.INT64:  # WebGL has no int64; indices work as int32
            return [self.onnx.helper.make_node("Cast", list(node.input), list(node.output), name=node.name, to=self.onnx.TensorProto.INT32)]
        return [node]

    def finish(self) -> None:
        onnx = self.onnx
        for name, value in self.consts.items():
            self.graph.initializer.append(onnx.numpy_helper.from_array(value, name))
        # The output: float32 [1, labels], static.
        shapes = self.shapes()
        out = self.graph.output[0]
        dims = shapes.get(out.name)
        if not dims:
            raise BuildError("the rewritten graph's output has no static shape")
        out.type.tensor_type.shape.CopyFrom(onnx.helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, list(dims)).tensor_type.shape)
        del self.model.opset_import[:]
        self.model.opset_import.append(onnx.helper.make_opsetid("", self.opset))
        self.model.ir_version = IR_VERSION  # what opset 17 needs; older readers (onnxjs) need no more
        self.model.producer_name = "edge-intent-kit webgl_graph"
        ops = {n.op_type for n in self.graph.node}
        bad = sorted(ops - WEBGL_OPS)
        if bad:
            raise BuildError(f"the WebGL rewrite left ops the WebGL backend lacks: {bad}")
        try:
            onnx.checker.check_model(self.model, full_check=True)
        except Exception as exc:
            raise BuildError(f"the rewritten WebGL graph is not valid ONNX: {str(exc).splitlines()[0]}") from None


def webgl_graph(source: bytes | str | Path | Any, length: int):
    """The fp32 classifier `source` (ONNX bytes, a path or a ModelProto) rewritten for WebGL at a
    fixed sequence length `length`: returns a new ``onnx.ModelProto`` (the source is not changed)."""
    import onnx

    if isinstance(source, (bytes, bytearray)):
        model = onnx.load_from_string(bytes(source))
    elif isinstance(source, (str, Path)):
        model = onnx.load(str(source))
    else:
        model = onnx.ModelProto()
        model.CopyFrom(source)
    if int(length) < 2:
        raise BuildError(f"WebGL pad length must be at least 2, got {length}")
    return _Rewriter(model, int(length)).run()


def graph_ops(model) -> list[str]:
    return sorted({n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in model.graph.node})


def write_webgl_graphs(source: bytes | str | Path, out_dir: str | Path, lengths: Sequence[int]) -> dict[int, Path]:
    """Write ``onnx/model_webgl_<L>.onnx`` under `out_dir` for each length (each file atomically)."""
    import onnx

    base = onnx.load_from_string(bytes(source)) if isinstance(source, (bytes, bytearray)) else onnx.load(str(source))
    out: dict[int, Path] = {}
    for length in lengths:
        model = webgl_graph(base, length)
        dst = Path(out_dir) / path_for(length)
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.tmp-", suffix=".onnx", dir=dst.parent)
        os.close(fd)
        try:
            onnx.save_model(model, tmp, save_as_external_data=False)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dst)
        finally:
            Path(tmp).unlink(missing_ok=True)
        out[length] = dst
    return out


# ------------------------------------------------------------------ validation


@dataclass
class WebglCheck:
    """How the WebGL graphs compare with fp32 onnxruntime on some texts."""

    max_logit_diff: float = 0.0
    texts: int = 0
    runs: int = 0
    argmax_disagreements: int = 0
    truncated: int = 0  # texts longer than the largest pad length (cut there, fp32 compared on the same tokens)
    per_length: dict[int, dict[str, float]] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_logit_diff": self.max_logit_diff,
            "texts": self.texts,
            "runs": self.runs,
            "argmax_disagreements": self.argmax_disagreements,
            "truncated": self.truncated,
            "per_length": {str(k): v for k, v in self.per_length.items()},
        }


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def pick_length(n_tokens: int, lengths: Sequence[int]) -> int:
    """The smallest pad length holding `n_tokens`, else the largest (the text is cut there)."""
    return next((n for n in lengths if n >= n_tokens), lengths[-1])


def padded_feeds(ids: Sequence[int], length: int, pad_id: int) -> dict[str, np.ndarray]:
    """int32 ``[1, length]`` feeds: ids then `pad_id`, attention mask 1 then 0."""
    extra = length - len(ids)
    if extra < 0:
        raise ValueError(f"{len(ids)} tokens do not fit in {length}")
    return {
        "input_ids": np.asarray([list(ids) + [pad_id] * extra], dtype=np.int32),
        "attention_mask": np.asarray([[1] * len(ids) + [0] * extra], dtype=np.int32),
    }


def check_webgl_graphs(
    fp32_path: str | Path,
    graphs: Mapping[int, str | Path],
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    *,
    extra_padding: int = 16,
) -> WebglCheck:
    """Compare each text on its WebGL graph (smallest pad length that holds it) with fp32 onnxruntime
    on the same tokens, unpadded; the first `extra_padding` texts also run on every longer graph
    (padding must not move the logits)."""
    if not texts:
        raise BuildError("the WebGL variant needs validation texts (none given)")
    lengths = sorted(graphs)
    pad_id = tokenizer.token_to_id(tokenizer.pad_token or "[PAD]")
    if pad_id is None:
        raise BuildError(f"the tokenizer's pad token {tokenizer.pad_token!r} is not in its vocabulary")
    ref = _session(Path(fp32_path))
    ref_inputs = {i.name for i in ref.get_inputs()}
    sessions = {n: _session(Path(p)) for n, p in graphs.items()}
    report = WebglCheck(per_length={n: {"runs": 0, "max_logit_diff": 0.0} for n in lengths})
    for index, text in enumerate(texts):
        full = tokenizer.encode(text, max_length=max_length)
        enc = tokenizer.encode(text, max_length=min(max_length, lengths[-1]))
        if len(full.ids) > len(enc.ids):
            report.truncated += 1
        ids = list(enc.ids)
        feeds = {"input_ids": np.asarray([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
                 "token_type_ids": np.zeros((1, len(ids)), dtype=np.int64)}
        want = ref.run(["logits"], {k: v for k, v in feeds.items() if k in ref_inputs})[0][0]
        first = pick_length(len(ids), lengths)
        targets = [n for n in lengths if n >= first] if index < extra_padding else [first]
        for n in targets:
            got = sessions[n].run(None, padded_feeds(ids, n, pad_id))[0][0]
            diff = float(np.max(np.abs(got - want)))
            if not math.isfinite(diff):
                diff = math.inf
            report.max_logit_diff = max(report.max_logit_diff, diff)
            stats = report.per_length[n]
            stats["runs"] += 1
            stats["max_logit_diff"] = max(stats["max_logit_diff"], diff)
            report.runs += 1
            if int(np.argmax(got)) != int(np.argmax(want)):
                report.argmax_disagreements += 1
                if len(report.examples) < 5:
                    report.examples.append(f"{text!r} (L={n})")
        report.texts += 1
    return report


# ------------------------------------------------------------------ the bundle


def _fp32_role(tier: Mapping[str, Any]) -> str:
    files, variants = tier.get("files", {}), tier.get("variants") or {}
    if "model_fp32" in files:
        return "model_fp32"
    if "model" in files and (variants.get("model") or {}).get("precision") == "fp32":
        return "model"
    raise BuildError(f"tier {tier.get('name')!r} has no fp32 graph (role model_fp32, or model with precision fp32) to rewrite for WebGL")


def add_webgl_variant(
    bundle_dir: str | Path,
    texts: Sequence[str],
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    *,
    tier_name: str | None = None,
    max_diff: float = MAX_LOGIT_DIFF,
    log: Callable[[str], None] = print,
    draft: BundleDraft | None = None,
) -> dict[str, Any]:
    """Add the WebGL variant (one graph per pad length) to the transformer tier of `bundle_dir`, or
    of `draft` (a ``BundleDraft``) when given: a step of `build`, which swaps the bundle in at its end.

    The graphs are checked against the tier's fp32 graph under onnxruntime on `texts`; any argmax
    disagreement or a logit difference over `max_diff` raises BuildError and leaves the bundle as
    it was. Earlier WebGL roles are replaced. Returns a summary (lengths, files, check figures).
    """
    from runtime_py.wordpiece import WordPieceTokenizer

    from ..bundle.writer import edit_bundle
    from .onnx_export import onnx_op_types

    bundle_dir = Path(bundle_dir)
    if draft is None and not (bundle_dir / "manifest.json").is_file():
        raise BuildError(f"{bundle_dir}: not a bundle (no manifest.json)")
    texts = [t for t in texts if isinstance(t, str)]
    with edit_bundle(bundle_dir, draft) as draft:
        tiers = [t for t in draft.manifest["tiers"] if t["kind"] == "transformer" and (tier_name is None or t["name"] == tier_name)]
        if not tiers:
            raise BuildError(f"{bundle_dir}: no transformer tier{f' named {tier_name!r}' if tier_name else ''} to add a WebGL variant to")
        tier = tiers[0]
        max_length = int(tier.get("max_length") or 128)
        buckets = bucket_lengths(lengths, max_length)
        source_role = _fp32_role(tier)
        source = draft.root / tier["files"][source_role]["path"]
        if "tokenizer" not in tier["files"]:
            raise BuildError(f"tier {tier['name']!r}: no 'tokenizer' file")
        tokenizer = WordPieceTokenizer.from_tokenizer_json(draft.root / tier["files"]["tokenizer"]["path"])
        log(f"rewriting {tier['files'][source_role]['path']} for WebGL at lengths {', '.join(map(str, buckets))}")
        graphs = write_webgl_graphs(source, draft.root, buckets)
        check = check_webgl_graphs(source, graphs, tokenizer, texts, max_length)
        log(
            f"WebGL graphs vs fp32 onnxruntime on {check.texts} texts ({check.runs} runs): max |logit diff| "
            f"{check.max_logit_diff:.2e}, argmax disagreements {check.argmax_disagreements}"
            + (f", {check.truncated} texts cut at {buckets[-1]} tokens" if check.truncated else "")
        )
        if check.argmax_disagreements or not check.max_logit_diff <= max_diff:
            examples = f" (e.g. {', '.join(check.examples)})" if check.examples else ""
            raise BuildError(
                f"the WebGL graphs disagree with fp32: max |logit diff| {check.max_logit_diff:.3g} (allowed {max_diff:g}), "
                f"{check.argmax_disagreements} argmax disagreements{examples}; the bundle is unchanged"
            )
        files = {role: entry["path"] for role, entry in tier["files"].items() if not role.startswith(ROLE_PREFIX)}
        variants = {role: v for role, v in (tier.get("variants") or {}).items() if not role.startswith(ROLE_PREFIX)}
        for n, path in graphs.items():
            role = role_for(n)
            files[role] = path_for(n)
            variants[role] = {
                "precision": "fp32",
                "fused": False,
                "backend": "webgl",
                "pad_length": n,
                "input_type": "int32",
                "ops": onnx_op_types(path),
                "runtimes": ["onnxruntime", "onnxruntime-web/webgl"],
                "source": source_role,
                "max_logit_diff": float(f"{check.per_length[n]['max_logit_diff']:.3g}"),
                "validated_on": int(check.per_length[n]["runs"]),
            }
        fields = {k: v for k, v in tier.items() if k not in ("name", "kind", "files")}
        fields["variants"] = variants
        # WebGL files of an earlier run that no role keeps are deleted by set_tier.
        draft.set_tier(tier["name"], tier["kind"], files, draft.manifest["labels"], **fields)
        sizes = {n: graphs[n].stat().st_size for n in buckets}
    for n in buckets:
        log(f"  {path_for(n)}: {sizes[n] / 1e6:.1f} MB, max |logit diff| {check.per_length[n]['max_logit_diff']:.2e} on {int(check.per_length[n]['runs'])} runs")
    return {"lengths": list(buckets), "files": {role_for(n): path_for(n) for n in buckets}, "bytes": {role_for(n): sizes[n] for n in buckets},
            "source": source_role, **check.to_dict()}


def validation_texts(data_dir: str | Path, limit: int | None = None, seed: int = 7) -> list[str]:
    """Texts of the validation split of `data_dir` (``val.jsonl``, else carved from train), at most `limit`."""
    from ..data.datasets import read_splits

    splits = read_splits(Path(data_dir), seed)
    texts = [r.text for r in splits.get("val") or []] or [r.text for r in splits["train"][:256]]
    return texts[:limit] if limit else texts


__all__ = [
    "DEFAULT_LENGTHS",
    "WEBGL_OPS",
    "add_webgl_variant",
    "bucket_lengths",
    "check_webgl_graphs",
    "parse_lengths",
    "pick_length",
    "role_for",
    "path_for",
    "validation_texts",
    "webgl_graph",
    "write_webgl_graphs",
]
