"""Export a ``SequenceClassifier`` to one self-contained ONNX file and check it against torch.

The TorchScript exporter (``dynamo=False``) is used on purpose: the dynamo exporter writes the
weights to a separate ``.onnx.data`` file, which onnxruntime-web cannot load (../shared/PLATFORM.md).
The graph is ``input_ids, attention_mask, token_type_ids`` (int64, [batch, sequence]) -> ``logits``
([batch, labels]) with batch and sequence dynamic.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from ..errors import BuildError
from ..train.transformer_model import SequenceClassifier

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "logits"


def _dummy_inputs(vocab_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Batch 2, length 8, second row padded: traces the general (padded) path, never a constant shape.
    # Any ids below the (possibly pruned) vocabulary's size will do.
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 1012, 102], [101, 7592, 102, 0, 0, 0, 0, 0]], dtype=torch.int64) % vocab_size
    mask = torch.tensor([[1] * 8, [1] * 3 + [0] * 5], dtype=torch.int64)
    return ids, mask, torch.zeros_like(ids)


def export_onnx(model: SequenceClassifier, out_path: Path, opset: int = 17) -> Path:
    """Write `model` as one ONNX file (no external data) at `out_path`, atomically; return the path."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    dynamic[OUTPUT_NAME] = {0: "batch"}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.tmp-", suffix=".onnx", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings and the dynamo=False deprecation notice
            torch.onnx.export(
                model,
                _dummy_inputs(model.encoder.get_input_embeddings().num_embeddings),
                str(tmp),
                dynamo=False,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes=dynamic,
                opset_version=opset,
                do_constant_folding=True,
            )
        _assert_self_contained(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BuildError:
        raise
    except Exception as exc:  # torch raises many kinds; the user needs one line
        raise BuildError(f"ONNX export to {out_path} failed: {exc}".splitlines()[0]) from exc
    finally:
        tmp.unlink(missing_ok=True)
        for stray in out_path.parent.glob(f"{tmp.name}*"):
            stray.unlink(missing_ok=True)
        if was_training:
            model.train()
    return out_path


def _assert_self_contained(path: Path) -> None:
    import onnx
    from onnx.external_data_helper import uses_external_data

    proto = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in proto.graph.initializer if uses_external_data(t)]
    if external:
        raise BuildError(f"{path}: the export wrote external data ({len(external)} tensors); the browser needs one file")


def onnx_session(onnx_path: Path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def _feeds(batch: Mapping[str, Sequence[Sequence[int]]], input_names: Sequence[str]) -> dict[str, np.ndarray]:
    missing = [n for n in INPUT_NAMES[:2] if n not in batch]
    if missing:
        raise BuildError(f"validation batch lacks {', '.join(missing)}")
    ids = np.asarray(batch["input_ids"], dtype=np.int64)
    feeds = {
        "input_ids": ids,
        "attention_mask": np.asarray(batch["attention_mask"], dtype=np.int64),
        "token_type_ids": np.zeros_like(ids) if batch.get("token_type_ids") is None else np.asarray(batch["token_type_ids"], dtype=np.int64),
    }
    return {k: v for k, v in feeds.items() if k in input_names}


def run_onnx(onnx_path: Path, batch: Mapping[str, Sequence[Sequence[int]]], session=None) -> np.ndarray:
    """Logits of one encoded (padded) batch from onnxruntime."""
    sess = session or onnx_session(onnx_path)
    names = [i.name for i in sess.get_inputs()]
    return sess.run([OUTPUT_NAME], _feeds(batch, names))[0]


def validate_onnx(
    model: SequenceClassifier,
    onnx_path: Path,
    batches: list[dict[str, list[list[int]]]],
    atol: float = 1e-4,
) -> float:
    """Max |logit difference| between onnxruntime and torch over `batches`; BuildError above `atol`."""
    if not batches:
        raise BuildError("validate_onnx needs at least one encoded batch")
    sess = onnx_session(Path(onnx_path))
    names = [i.name for i in sess.get_inputs()]
    was_training = model.training
    model.eval()
    worst = 0.0
    try:
        for batch in batches:
            feeds = _feeds(batch, INPUT_NAMES)
            with torch.no_grad():
                expected = model(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES)).numpy()
            got = sess.run([OUTPUT_NAME], {n: feeds[n] for n in names})[0]
            if got.shape != expected.shape:
                raise BuildError(f"{onnx_path}: logits shape {got.shape} differs from torch's {expected.shape}")
            worst = max(worst, float(np.max(np.abs(got - expected))) if got.size else 0.0)
    finally:
        if was_training:
            model.train()
    if not np.isfinite(worst) or worst > atol:
        raise BuildError(f"{onnx_path}: ONNX logits differ from torch by {worst:.3g} (allowed {atol:g})")
    return worst


def onnx_op_types(path: Path) -> list[str]:
    """Sorted distinct op types of the graph (subgraphs included); non-default domains prefixed."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    ops: set[str] = set()

    def walk(graph) -> None:
        for node in graph.node:
            domain = node.domain if node.domain not in ("", "ai.onnx") else ""
            ops.add(f"{domain}.{node.op_type}" if domain else node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(proto.graph)
    return sorted(ops)
