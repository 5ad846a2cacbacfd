"""The transformer tier's size recipes, ``--size`` of ``train`` and ``build``: how many encoder layers,
which int8 weight format and how many wordpieces. Each is a point of the size/accuracy table in
docs/BENCHMARKS.md ("Small"); an option given on its own (``--layers``, ``--int8-scheme``,
``--vocab-size``) overrides the recipe's. With ``train --teacher`` the layers are the teacher's,
evenly spaced (builder.train.teacher); otherwise the base's first ones.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..export.int8_schemes import DEFAULT_INT8_SCHEME


@dataclass(frozen=True)
class SizeRecipe:
    layers: int | None  # None: the base's own depth
    int8_scheme: str
    vocab_size: int | None  # None: the base's vocabulary
    summary: str


SIZES = {
    "base": SizeRecipe(None, DEFAULT_INT8_SCHEME, None, "the base as it is (MiniLM-L6: 23 MB)"),
    "compact": SizeRecipe(None, "u8s4", 16000, "the base's layers, 4-bit weights, 16,000 wordpieces (MiniLM-L6: 9.3 MB)"),
    "small": SizeRecipe(3, DEFAULT_INT8_SCHEME, 8000, "3 layers, 7-bit weights, 8,000 wordpieces (MiniLM: 8.8 MB)"),
    "tiny": SizeRecipe(3, "u8s4", 4000, "3 layers, 4-bit weights, 4,000 wordpieces (MiniLM: 3.9 MB)"),
}


def apply_size(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the layers, int8 format and vocabulary size that `args` leaves unset from its --size."""
    recipe = SIZES[args.size_recipe]
    for name in ("layers", "int8_scheme", "vocab_size"):
        if getattr(args, name, None) is None:
            setattr(args, name, getattr(recipe, name))
    return args


def size_help(default: str) -> str:
    return "the transformer tier's size recipe: " + "; ".join(f"{k}: {r.summary}" for k, r in SIZES.items()) + \
        f" (default: {default}; --layers, --int8-scheme and --vocab-size override it)"
