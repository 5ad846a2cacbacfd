"""A bundle's transformer tier as a teacher for a smaller student (``train --teacher BUNDLE``).

Everything comes from the bundle's fp32 graph (``onnx/model.onnx``), so any bundle the builder made
can teach, with no PyTorch checkpoint kept beside it:

* ``logits(texts)``: the teacher's soft labels, as runtime_py computes them (its tokenizer, its
  onnxruntime session, the bundle's files hash-checked);
* ``student(layers)``: a ``SequenceClassifier`` with the teacher's embeddings, head and ``layers``
  of its encoder layers, evenly spaced and ending at the last (6 -> 3 keeps 1, 3, 5), read back
  from the graph's initializers. The exporter keeps parameter names for every initializer except
  the MatMul weights (``onnx::MatMul_N``), which are found by their node's name
  (``/encoder/encoder/layer.0/attention/self/query/MatMul`` -> ``...query.weight``, transposed), and
  equal tensors, which it shares through ``Identity`` nodes named for the parameter.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from runtime_py.bundle import read_manifest
from runtime_py.errors import IntentKitError
from runtime_py.transformer import load_transformer_tier

from ..errors import BuildError
from .transformer_model import SequenceClassifier

FP32_ROLE = "model_fp32"
UNUSED = "encoder.pooler."  # BERT's pooler: mean pooling never reads it, so no graph holds it
_LAYER = re.compile(r"^(encoder\.encoder\.layer\.)(\d+)(\..*)$")


def spaced_layers(teacher_layers: int, layers: int) -> list[int]:
    """`layers` of `teacher_layers` indices, evenly spaced and ending at the last."""
    if not 1 <= layers <= teacher_layers:
        raise BuildError(f"--layers {layers}: the teacher has {teacher_layers} encoder layers; a student keeps 1 to {teacher_layers}")
    return [round((k + 1) * teacher_layers / layers) - 1 for k in range(layers)]


def graph_state_dict(graph_path: Path) -> dict[str, torch.Tensor]:
    """A ``SequenceClassifier`` state dict read back from its exported fp32 graph."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph_path))
    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:  # the exporter shares equal tensors (e.g. zero biases) through Identity nodes
        if node.op_type == "Identity" and node.input[0] in arrays:
            arrays[node.output[0]] = arrays[node.input[0]]
    state = {name: torch.from_numpy(np.array(a)) for name, a in arrays.items() if not name.startswith("onnx::")}
    for node in model.graph.node:
        weight = next((name for name in node.input if name.startswith("onnx::MatMul") and name in arrays), None)
        if node.op_type == "MatMul" and weight is not None:
            module = node.name.strip("/").removesuffix("/MatMul").replace("/", ".")
            state[f"{module}.weight"] = torch.from_numpy(np.ascontiguousarray(arrays[weight].T))
    return state


class Teacher:
    """A bundle's fp32 transformer graph, run by runtime_py: soft labels, and the weights a student
    starts from."""

    def __init__(self, bundle: str | Path) -> None:
        self.root = Path(bundle)
        try:
            spec = next((t for t in read_manifest(self.root).tiers if t.kind == "transformer"), None)
            if spec is None:
                raise BuildError(f"--teacher {self.root}: the bundle has no transformer tier to learn from")
            shipped = (spec.extra.get("variants") or {}).get("model") or {}
            role = FP32_ROLE if FP32_ROLE in spec.files else "model" if shipped.get("precision") == "fp32" else None
            if role is None:
                raise BuildError(f"--teacher {self.root}: the transformer tier has no fp32 graph (a student learns from fp32 logits)")
            self.tier = load_transformer_tier(self.root, spec, True, variant=role, threads=2, environ={})
            self.config = json.loads((self.root / spec.files["config"].path).read_text(encoding="utf-8"))
        except IntentKitError as exc:
            raise BuildError(f"--teacher {self.root}: {exc}") from None
        self.graph = self.root / spec.files[role].path
        self.labels = list(self.tier.labels)
        self.tokenizer = self.tier.tokenizer
        self.max_length = self.tier.max_length

    def logits(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """The teacher's fp32 logits for `texts`, batched by length (fp32 with a mask: padding moves
        them by float rounding only)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self.tier.logits_batch([texts[i] for i in rows])
        return out

    def student(self, layers: int | None, dropout: float = 0.1) -> tuple[SequenceClassifier, list[int]]:
        """A classifier with the teacher's embeddings, head and `layers` of its layers (all when None);
        returns it and the teacher layers it kept."""
        from transformers import AutoConfig, AutoModel

        total = int(self.config["num_hidden_layers"])
        kept = spaced_layers(total, total if layers is None else layers)
        config = AutoConfig.for_model(**{**self.config, "num_hidden_layers": len(kept)})
        model = SequenceClassifier(AutoModel.from_config(config, attn_implementation="eager"), self.labels, dropout=dropout)
        source = graph_state_dict(self.graph)
        state = {}
        for name, tensor in source.items():
            match = _LAYER.match(name)
            if match is None:
                state[name] = tensor
            elif int(match.group(2)) in kept:
                state[f"{match.group(1)}{kept.index(int(match.group(2)))}{match.group(3)}"] = tensor
        missing = [n for n, _ in model.named_parameters() if n not in state and not n.startswith(UNUSED)]
        if missing:
            raise BuildError(f"--teacher {self.root}: its graph lacks weights the student needs ({', '.join(missing[:3])}); was it exported by the builder?")
        model.load_state_dict(state, strict=False)
        return model, kept
