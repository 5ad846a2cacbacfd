"""The transformer tier: an ONNX sequence classifier run by onnxruntime, fed by our WordPiece tokenizer.

onnxruntime and numpy are optional: they are imported when a transformer tier is loaded, never
when ``runtime_py`` is imported. Without them the loader raises :class:`BundleError`, the router
skips the tier and ``status()`` says why; the other tiers keep working.

Manifest entry (docs/BUNDLE.md)::

    {"name": "transformer", "kind": "transformer",
     "files": {"model": ..., "model_fp32": ..., "model_native": ... (optional), "tokenizer": ..., "config": ...},
     "temperature": 1.21, "threshold": 0.55, "max_length": 64,
     "variants": {"model": {"precision": "int8", ...}, ...}}

Every file role starting with ``model`` is one variant of the same classifier. The runtime runs
``model`` unless told otherwise:

==================  ===================  =======  ================================================
loader option       environment          default  meaning
==================  ===================  =======  ================================================
variant             INTENT_ONNX_VARIANT  model    which file role to run (model_fp32, model_native)
threads             INTENT_ORT_THREADS   1        onnxruntime intra-op threads (0: its default)
==================  ===================  =======  ================================================

One intra-op thread keeps per-request latency predictable on shared machines; raise it for
batch evaluation.

Graphs with a fixed input shape (the WebGL variant, roles ``model_webgl_<L>``: int32
``[1, L]``) are never chosen by default. Chosen with ``INTENT_ONNX_VARIANT``, such a graph gets
its declared integer type, texts cut at ``L`` tokens ([SEP] kept) and padded to ``L`` with the pad
id (attention mask 0), and a batch run one text at a time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Sequence

from .bundle import DEFAULT_MAX_LENGTH, TierSpec, read_manifest, tier_settings, verified_path
from .calibration import softmax
from .errors import BundleError
from .tiers import Tier
from .wordpiece import WordPieceTokenizer

DEFAULT_VARIANT = "model"
DEFAULT_THREADS = 1
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_ORT_INT_TYPES = {"tensor(int64)": "int64", "tensor(int32)": "int32"}


def _import_runtime() -> tuple[ModuleType, ModuleType]:
    """onnxruntime and numpy, or a BundleError saying how to get them."""
    try:
        import numpy
    except ImportError:
        raise BundleError(
            "the transformer tier needs numpy and onnxruntime, and numpy is not installed: "
            "pip install onnxruntime (it brings numpy); the other tiers keep working"
        ) from None
    try:
        import onnxruntime
    except ImportError:
        raise BundleError(
            "onnxruntime is not installed: install onnxruntime (pip install onnxruntime) to run "
            "the transformer tier; the other tiers keep working"
        ) from None
    return onnxruntime, numpy


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class TransformerTier(Tier):
    """A transformer classifier: ``softmax(logits / temperature)`` of an ONNX graph's output."""

    kind = "transformer"

    def __init__(
        self,
        name: str,
        session: Any,
        tokenizer: WordPieceTokenizer,
        labels: Sequence[str],
        *,
        temperature: float = 1.0,
        max_length: int = DEFAULT_MAX_LENGTH,
        numpy: ModuleType,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        """Wrap an onnxruntime ``InferenceSession``; `info` is extra detail for :meth:`describe`."""
        self.name = name
        self.session = session
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.temperature = float(temperature)
        self.max_length = int(max_length)
        self.info = dict(info or {})
        self._np = numpy
        inputs = {i.name: i.type for i in session.get_inputs()}
        unknown = sorted(set(inputs) - set(MODEL_INPUTS))
        if unknown:
            raise BundleError(f"tier {name!r}: the ONNX graph wants inputs {unknown}; only {list(MODEL_INPUTS)} are supported")
        if "input_ids" not in inputs:
            raise BundleError(f"tier {name!r}: the ONNX graph has no 'input_ids' input (has {sorted(inputs)})")
        bad = {k: t for k, t in inputs.items() if t not in _ORT_INT_TYPES}
        if bad:
            raise BundleError(f"tier {name!r}: ONNX inputs must be int64 or int32 tensors, got {bad}")
        # Feed only what the graph declares, in the dtype it declares (some graphs drop token_type_ids).
        self._inputs = {k: getattr(numpy, _ORT_INT_TYPES[t]) for k, t in inputs.items()}
        outputs = [o.name for o in session.get_outputs()]
        self.output_name = "logits" if "logits" in outputs else outputs[0]
        # A fixed [batch, L] input shape (the WebGL variant): pad every text to L, one text per run.
        shape = next(i.shape for i in session.get_inputs() if i.name == "input_ids")
        fixed = shape[1] if isinstance(shape, (list, tuple)) and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0 else None
        self.pad_length: int | None = fixed
        self.pad_id = 0
        if fixed is not None:
            if fixed < 2:
                raise BundleError(f"tier {name!r}: the ONNX graph's fixed sequence length {fixed} cannot hold [CLS] and [SEP]")
            pad_id = tokenizer.token_to_id(tokenizer.pad_token) if tokenizer.pad_token else None
            if pad_id is None:
                raise BundleError(f"tier {name!r}: the graph needs padding to {fixed} tokens but the tokenizer has no pad token")
            self.pad_id = pad_id
            self.max_length = min(self.max_length, fixed)

    def feeds(
        self, input_ids: Sequence[Sequence[int]], attention_mask: Sequence[Sequence[int]], token_type_ids: Sequence[Sequence[int]]
    ) -> dict[str, Any]:
        """The session's input arrays for an encoded batch: only the inputs the graph declares."""
        columns = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return {k: self._np.asarray(columns[k], dtype=dtype) for k, dtype in self._inputs.items()}

    def _run(self, input_ids: list[list[int]], attention_mask: list[list[int]], token_type_ids: list[list[int]]) -> Any:
        if self.pad_length is not None:
            extra = [self.pad_length - len(row) for row in input_ids]
            input_ids = [row + [self.pad_id] * n for row, n in zip(input_ids, extra)]
            attention_mask = [row + [0] * n for row, n in zip(attention_mask, extra)]
            token_type_ids = [row + [0] * n for row, n in zip(token_type_ids, extra)]
        (out,) = self.session.run([self.output_name], self.feeds(input_ids, attention_mask, token_type_ids))
        if out.ndim != 2 or out.shape != (len(input_ids), len(self.labels)):
            raise BundleError(
                f"tier {self.name!r}: the model returned shape {tuple(out.shape)}, expected ({len(input_ids)}, {len(self.labels)})"
            )
        return out

    def logits(self, text: str) -> list[float]:
        enc = self.tokenizer.encode(text, max_length=self.max_length)
        return self._run([enc.ids], [enc.attention_mask], [enc.token_type_ids])[0].tolist()

    def logits_batch(self, texts: Sequence[str]) -> list[list[float]]:
        """Logits of several texts in one run (padded to the longest); for evaluation, not latency."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str (use logits() for a single text)")
        if not texts:
            return []
        if self.pad_length is not None:  # a fixed [1, L] graph: one text per run
            return [self.logits(text) for text in texts]
        batch = self.tokenizer.encode_batch(texts, max_length=self.max_length)
        out = self._run(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        return out.tolist()

    def probabilities(self, text: str) -> list[float]:
        return softmax(self.logits(text), self.temperature)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            **self.info,
            "max_length": self.max_length,
            **({"pad_length": self.pad_length} if self.pad_length is not None else {}),
            "vocab_size": self.tokenizer.vocab_size,
            "inputs": list(self._inputs),
        }


def variant_roles(spec: TierSpec) -> list[str]:
    """The file roles holding a model variant (``model``, ``model_fp32``, ...), manifest order."""
    return [role for role in spec.files if role.startswith("model")]


def _threads(value: int | None, environ: Mapping[str, str]) -> int:
    if value is None:
        raw = environ.get("INTENT_ORT_THREADS", "").strip()
        if not raw:
            return DEFAULT_THREADS
        try:
            value = int(raw)
        except ValueError:
            raise BundleError(f"INTENT_ORT_THREADS={raw!r}: expected a whole number of threads (0: onnxruntime's default)") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1024:
        raise BundleError(f"threads={value!r}: expected a whole number of threads (0: onnxruntime's default)")
    return value


def _read_config(path: Path, tier: str) -> tuple[list[str], dict[str, Any]]:
    """config.json's labels in id order, and the whole config."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    id2label = config.get("id2label") if isinstance(config, dict) else None
    if not isinstance(id2label, dict) or not id2label:
        raise BundleError(f"{path}: no id2label; tier {tier!r} cannot name its outputs")
    try:
        labels = [id2label[str(i)] for i in range(len(id2label))]
    except KeyError:
        raise BundleError(f"{path}: id2label keys must be 0..{len(id2label) - 1}, got {sorted(id2label)}") from None
    if not all(isinstance(label, str) and label for label in labels) or len(set(labels)) != len(labels):
        raise BundleError(f"{path}: id2label must map to distinct, non-empty intent names")
    return labels, config


def cpu_independent(details: Any) -> bool | None:
    """Whether a variant answers the same on every CPU (docs/BUNDLE.md, int8 roles); None if unknown.

    An int8 graph qualifies when the builder proved its pair sums fit int16 (``max_pair_sum`` at
    most 32,767, or null for uint8 weights); older int8 bundles did not record it, and their 8-bit
    weights answer differently on x86 CPUs without VNNI.
    """
    if not isinstance(details, dict) or details.get("precision") not in ("int8", "fp32"):
        return None
    if details["precision"] == "fp32":
        return True
    bound = details.get("max_pair_sum", -1)
    return bound is None or (isinstance(bound, int) and not isinstance(bound, bool) and 0 <= bound <= 32767)


def load_transformer_tier(
    bundle_dir: Path,
    spec: TierSpec,
    check_hash: bool = True,
    *,
    variant: str | None = None,
    threads: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> TransformerTier:
    """Load the tier `spec` of the bundle at `bundle_dir`; the files it uses are size- and hash-checked.

    `variant` and `threads` default to ``INTENT_ONNX_VARIANT`` / ``INTENT_ORT_THREADS`` from
    `environ` (``os.environ``), then to ``model`` and 1. Raises :class:`BundleError` for anything
    that keeps the tier from running (no onnxruntime, missing or corrupt files, mismatched labels).
    """
    env = os.environ if environ is None else environ
    where = f"tier {spec.name!r}"
    settings = tier_settings(spec)  # required files, max_length, temperature
    max_length, temperature = settings["max_length"], settings["temperature"]
    roles = variant_roles(spec)
    role = variant or env.get("INTENT_ONNX_VARIANT", "").strip() or DEFAULT_VARIANT
    if role not in roles:
        raise BundleError(f"{where}: no model variant {role!r} in the manifest (available: {roles or 'none'})")
    n_threads = _threads(threads, env)
    ort, np = _import_runtime()

    model_path = verified_path(bundle_dir, spec.files[role], check_hash)
    tokenizer_path = verified_path(bundle_dir, spec.files["tokenizer"], check_hash)
    config_path = verified_path(bundle_dir, spec.files["config"], check_hash)
    labels, config = _read_config(config_path, spec.name)
    bundle_labels = read_manifest(bundle_dir).labels
    if set(labels) != set(bundle_labels):
        extra, missing = sorted(set(labels) - set(bundle_labels)), sorted(set(bundle_labels) - set(labels))
        raise BundleError(
            f"{config_path}: id2label disagrees with the manifest's labels (extra: {extra or '-'}, missing: {missing or '-'})"
        )
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and max_length > positions:
        raise BundleError(f"{where}.max_length: {max_length} exceeds the model's {positions} positions")
    try:
        tokenizer = WordPieceTokenizer.from_tokenizer_json(tokenizer_path)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise BundleError(f"{tokenizer_path}: not a usable tokenizer.json ({type(exc).__name__}: {exc})") from None

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: quantized graphs log harmless warnings
    try:
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
        raise BundleError(f"{model_path}: onnxruntime cannot load the model ({_first_line(exc)}); rebuild the bundle") from None

    variants = spec.extra.get("variants")
    details = variants.get(role) if isinstance(variants, dict) else None
    info = {
        "variant": role,
        "file": spec.files[role].path,
        "bytes": spec.files[role].bytes,
        "precision": details.get("precision") if isinstance(details, dict) else None,
        "cpu_independent": cpu_independent(details),
        "variants": roles,
        "onnxruntime": getattr(ort, "__version__", "unknown"),
        "threads": n_threads,
        "providers": session.get_providers(),
    }
    tier = TransformerTier(
        spec.name, session, tokenizer, labels, temperature=temperature, max_length=max_length, numpy=np, info=info
    )
    # One run at load: a graph whose output does not match config.json's labels fails here, not per request.
    try:
        tier.logits("")
    except BundleError as exc:
        raise BundleError(f"{exc} (config.json has {len(labels)} labels)") from None
    except Exception as exc:
        raise BundleError(f"{model_path}: the model does not run ({_first_line(exc)})") from None
    return tier
