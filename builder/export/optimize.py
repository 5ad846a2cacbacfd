"""int8 quantization, native-only fusion and the published set of ONNX variants.

Variants (Hugging Face / transformers.js layout names, under ``onnx/``):

* ``model.onnx``            fp32, plain ONNX ops: every runtime (role ``model_fp32``)
* ``model_quantized.onnx``  dynamic int8, plain ONNX ops: browser and native (role ``model``)
* ``model_native_int8.onnx`` attention-fused (com.microsoft contrib ops) + int8: native onnxruntime
  only, published only when it is measurably faster than ``model_quantized.onnx`` (role ``model_native``)

Quantization choice (measured on all-MiniLM-L6-v2 with a random 11-way head, see
tests/test_onnx_pipeline.py and the build report): weights of MatMul and Gemm per output channel
(symmetric), plus the embedding tables (Gather), which are most of the file; activations are
quantized dynamically at run time (uint8). Per-tensor MatMul weights changed the argmax far more
often than per-channel ones, and quantizing the embeddings alone changed none.

The weights are 7-bit (`INT8_SCHEMES`, ``u8s7``): 8-bit ones overflow the int16 pair sums of
onnxruntime's u8×s8 kernel on x86 CPUs without VNNI, so the same file answered differently there
(builder/export/int8_safety.py; docs/BENCHMARKS.md, "int8 on every CPU", for the comparison of schemes).
Every published int8 graph is proven free of that overflow before it is written.

Before quantizing, `build_variants` rewrites the fp32 graph when given calibration texts: the few
input channels of each MatMul that are far larger than the rest stay in float, and the others are
balanced against the weights (`activation_outliers`). The int8 graph is then about 2-3x closer to
fp32 and agrees more often across runtimes (docs/BENCHMARKS.md, "int8 closer to fp32").
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import BuildError
from .activation_outliers import DEFAULT_RECIPE, OutlierRecipe, SplitReport, write_split
from .int4_weights import store_int4
from .int8_schemes import DEFAULT_INT8_SCHEME, INT8_SCHEMES
from .int8_safety import max_pair_sum, require_no_saturation
from .onnx_export import onnx_op_types

log = logging.getLogger(__name__)

QUANT_OPS = ("MatMul", "Gemm", "Gather")
NATIVE_SPEEDUP = 0.95  # keep the fused variant only when its median is below 95% of the plain int8 one
FUSED_MARKERS = ("com.microsoft.Attention", "com.microsoft.MultiHeadAttention", "com.microsoft.QAttention")




def _tmp_sibling(dst: Path, suffix: str = ".onnx") -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.tmp-", suffix=suffix, dir=dst.parent)
    os.close(fd)
    return Path(name)


def _finish(tmp: Path, dst: Path) -> Path:
    os.chmod(tmp, 0o644)
    os.replace(tmp, dst)
    return dst


def quantize_int8(
    src: Path,
    dst: Path,
    per_channel: bool = True,
    *,
    op_types: tuple[str, ...] = QUANT_OPS,
    scheme: str = DEFAULT_INT8_SCHEME,
    keep_float: Sequence[str] = (),
) -> Path:
    """Dynamic int8 of `src` into `dst`, atomically; `op_types` picks the quantized ops, `scheme` the
    weight format (`INT8_SCHEMES`), `keep_float` names nodes left in float (`activation_outliers`).

    Works on plain and on fused (contrib-op) graphs: ``DefaultTensorType`` FLOAT lets the quantizer
    type tensors that onnx shape inference cannot (contrib-op outputs). Every temporary file lives
    in a private folder under the system temp dir or next to `dst`, and is removed on any outcome.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    if scheme not in INT8_SCHEMES:
        raise BuildError(f"int8 scheme {scheme!r}: choose from {', '.join(INT8_SCHEMES)}")
    chosen = INT8_SCHEMES[scheme]
    if not src.is_file():
        raise BuildError(f"{src}: no such ONNX file to quantize")
    tmp = _tmp_sibling(dst)
    work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.quant-", dir=dst.parent))  # beside dst: a killed build's stage takes it along
    try:
        out = work / "q.onnx"
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer logs per-tensor INFO and a pre-processing hint on root
        try:
            quantize_dynamic(
                src,
                out,
                op_types_to_quantize=list(op_types),
                per_channel=per_channel,
                reduce_range=chosen.reduce_range,
                weight_type=QuantType[chosen.weight_type],
                nodes_to_exclude=list(keep_float),
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        finally:
            root.setLevel(level)
        if chosen.weight_bits == 4:
            store_int4(src, out, tmp)
        else:
            proto = onnx.load(str(out))  # re-save as one file, whatever the quantizer wrote next to it
            onnx.save_model(proto, str(tmp), save_as_external_data=False)
        return _finish(tmp, dst)
    except BuildError:
        raise
    except Exception as exc:
        raise BuildError(f"int8 quantization of {src} failed: {exc}".splitlines()[0]) from exc
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def fuse_for_native(src: Path, dst: Path, num_heads: int, hidden_size: int, *, embed_layer_norm: bool = True) -> Path | None:
    """Fuse attention/LayerNorm/GELU with onnxruntime.transformers (model_type "bert") into `dst`.

    The result uses com.microsoft contrib ops: native onnxruntime only. Returns None (and logs why)
    when no attention fusion applies (e.g. an sdpa export, or an unsupported architecture).
    `embed_layer_norm=False` leaves the embeddings' Gathers and LayerNorm unfused, so int8 can
    quantize the embedding tables (benchmarks/fused_graphs.py).
    """
    src, dst = Path(src), Path(dst)
    try:
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError as exc:  # pragma: no cover - part of the onnxruntime wheel
        log.warning("no fused native variant: onnxruntime.transformers unavailable (%s)", exc)
        return None
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    logging.getLogger("fusion").setLevel(logging.ERROR)
    try:
        from onnxruntime.transformers.fusion_options import FusionOptions

        fusions = FusionOptions("bert")
        fusions.enable_embed_layer_norm = embed_layer_norm
        opt = optimize_model(
            str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0, use_gpu=False,
            optimization_options=fusions,
        )
    except Exception as exc:
        log.warning("no fused native variant: onnxruntime.transformers.optimizer failed: %s", exc)
        return None
    ops = {f"{n.domain}.{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type for n in opt.model.graph.node}
    if not ops & set(FUSED_MARKERS):
        log.warning("no fused native variant: the optimizer found no attention to fuse (ops: %s)", ", ".join(sorted(ops)))
        return None
    tmp = _tmp_sibling(dst)
    try:
        import onnx

        model = opt.model
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
        onnx.save_model(model, str(tmp), save_as_external_data=False)
        return _finish(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class Variant:
    """One published ONNX file: what it is and which runtimes may load it."""

    role: str
    path: str
    precision: str
    fused: bool
    bytes: int
    ops: list[str] = field(default_factory=list)
    runtimes: list[str] = field(default_factory=list)
    # int8 only: the weight format and the largest |u8×s8 pair sum| any of its MatMuls can form
    # (None: no such pairs); at most 32,767 for every published graph.
    int8_scheme: str | None = None
    max_pair_sum: int | None = None
    # int8 only: the input channels kept in float and how the others were balanced (None: no rewrite)
    activation_outliers: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def manifest_entry(self) -> dict:
        """What the manifest's ``variants`` records of this file (path, size and hash are in ``files``)."""
        entry = {"precision": self.precision, "fused": self.fused, "ops": self.ops, "runtimes": self.runtimes}
        if self.precision == "int8":
            entry.update(int8_scheme=self.int8_scheme, max_pair_sum=self.max_pair_sum)
            if self.activation_outliers is not None:
                entry["activation_outliers"] = self.activation_outliers
        return entry


def runtimes_for(ops: list[str]) -> list[str]:
    """Runtimes a graph with these op types can be given to.

    Basis (conservative): native onnxruntime runs every op we emit, contrib ops included. The
    browser builds (onnxruntime-web, WASM and WebGPU) are listed only for graphs made of default-
    domain ONNX ops alone: our plain fp32 and dynamic-int8 exports, which were run in Chromium
    through onnxruntime-web 1.30 (../shared/PLATFORM.md). Any non-default domain (com.microsoft
    Attention, SkipLayerNormalization, QAttention, ...) makes a graph native-only. Caveat for
    WebGPU with int8 graphs: use the ``ort.webgpu*.mjs`` build; ``ort.all*`` gave wrong logits.
    WebGL is never listed (it cannot create a session for these graphs).
    """
    out = ["onnxruntime"]
    if all("." not in op for op in ops):
        out += ["onnxruntime-web/wasm", "onnxruntime-web/webgpu"]
    return out


def describe_variant(role: str, path: str | Path, precision: str, fused: bool, int8_scheme: str | None = None,
                     outliers: SplitReport | None = None) -> Variant:
    """A `Variant` for the file at `path`; an int8 one must pass `require_no_saturation` (BuildError)."""
    ops = onnx_op_types(Path(path))
    variant = Variant(role=role, path=str(path), precision=precision, fused=fused, bytes=os.path.getsize(path), ops=ops,
                      runtimes=runtimes_for(ops))
    if precision == "int8":
        variant.int8_scheme = int8_scheme or DEFAULT_INT8_SCHEME
        variant.max_pair_sum = max_pair_sum(require_no_saturation(path, path))
        variant.activation_outliers = outliers.manifest_entry() if outliers is not None else None
    return variant


def _dummy_feeds(sess, batch: int, length: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 2000, size=(batch, length), dtype=np.int64)  # below any pruned vocabulary's size
    ids[:, 0], ids[:, -1] = 101, 102
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {i.name: feeds[i.name] for i in sess.get_inputs()}


def median_latency_ms(path: Path, length: int = 16, runs: int = 30, warmup: int = 5, threads: int = 1) -> float:
    """Median wall time (ms) of one batch-1 inference at `length` tokens, `threads` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feeds = _dummy_feeds(sess, 1, length)
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0)


def quantize_calibrated(
    src: Path,
    dst: Path,
    scheme: str = DEFAULT_INT8_SCHEME,
    calibration: Sequence[Mapping[str, np.ndarray]] = (),
    outliers: OutlierRecipe | None = DEFAULT_RECIPE,
) -> tuple[Path, SplitReport | None]:
    """The shipped int8 graph of `src` at `dst`: with `calibration` and an `outliers` recipe, its
    outlier activation channels in float (activation_outliers); returns the graph and the rewrite's report."""
    if not (calibration and outliers):
        return quantize_int8(src, dst, per_channel=True, scheme=scheme), None
    split = _tmp_sibling(Path(dst), ".split.onnx")
    try:
        report = write_split(src, split, calibration, outliers)
        if not report.channels:  # no outliers: smoothing alone measured worse than no rewrite (docs/BENCHMARKS.md)
            return quantize_int8(src, dst, per_channel=True, scheme=scheme), replace(report, inputs=0)
        return quantize_int8(split, dst, per_channel=True, scheme=scheme, keep_float=report.float_matmuls), report
    finally:
        split.unlink(missing_ok=True)


def build_variants(
    fp32_path: Path,
    out_dir: Path,
    num_heads: int,
    hidden_size: int,
    *,
    timings: dict[str, float] | None = None,
    scheme: str = DEFAULT_INT8_SCHEME,
    calibration: Sequence[Mapping[str, np.ndarray]] = (),
    outliers: OutlierRecipe | None = DEFAULT_RECIPE,
) -> list[Variant]:
    """Write ``onnx/model.onnx``, ``onnx/model_quantized.onnx`` and, when faster, ``onnx/model_native_int8.onnx``.

    `fp32_path` is an export from ``export_onnx``; `out_dir` is the bundle folder. Variant paths are
    relative to `out_dir`. Pass a dict as `timings` to receive the 1-thread medians (ms, 16 tokens).
    With `calibration` (batch-1 inputs of real texts, `activation_outliers.calibration_feeds`) and an
    `outliers` recipe, int8 graphs keep their outlier activation channels in float.
    """
    fp32_path, out_dir = Path(fp32_path), Path(out_dir)
    onnx_dir = out_dir / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    plain = onnx_dir / "model.onnx"
    if fp32_path.resolve() != plain.resolve():
        tmp = _tmp_sibling(plain)
        try:
            shutil.copyfile(fp32_path, tmp)
            _finish(tmp, plain)
        finally:
            tmp.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".variants-", dir=onnx_dir))

    native = onnx_dir / "model_native_int8.onnx"
    try:
        quant, report = quantize_calibrated(plain, onnx_dir / "model_quantized.onnx", scheme, calibration, outliers)
        variants = [
            describe_variant("model_fp32", plain, "fp32", False),
            describe_variant("model", quant, "int8", False, scheme, report),
        ]
        fused = fuse_for_native(plain, work / "fused.onnx", num_heads, hidden_size)
        if fused is not None:
            _, fused_report = quantize_calibrated(fused, work / "fused_int8.onnx", scheme, calibration, outliers)
            t_plain = median_latency_ms(quant)
            t_native = median_latency_ms(work / "fused_int8.onnx")
            if timings is not None:
                timings.update({"model": t_plain, "model_native": t_native})
            if t_native < NATIVE_SPEEDUP * t_plain:
                tmp = _tmp_sibling(native)
                try:
                    shutil.copyfile(work / "fused_int8.onnx", tmp)
                    _finish(tmp, native)
                finally:
                    tmp.unlink(missing_ok=True)
                variants.append(describe_variant("model_native", native, "int8", True, scheme, fused_report))
            else:
                log.info("no fused native variant: %.2f ms vs %.2f ms for model_quantized (1 thread, 16 tokens)", t_native, t_plain)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not any(v.role == "model_native" for v in variants):
        native.unlink(missing_ok=True)  # a stale one from an earlier build must not linger
    for v in variants:
        v.path = Path(v.path).relative_to(out_dir).as_posix()
    return variants
