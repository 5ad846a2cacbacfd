"""The BoW tier's word-piece block (bow.json version 4): which pieces ship, and their vectors.

A pretrained encoder's word pieces carry what the training data cannot: that "wire" and
"transfer" mean alike. Each piece goes through the encoder alone (``[CLS] piece [SEP]``), and its
output vector, centred, is the piece's static embedding (Model2Vec's recipe). The trainer learns
one linear map from a text's mean piece vector to the intents and folds it into one row of
weights per piece, so the runtimes only add rows, as for any other feature
(docs/BENCHMARKS.md, "static word pieces").
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from runtime_py.features import CONTINUATION, word_pieces
from runtime_py.wordpiece import WordPieceTokenizer

from ..errors import BuildError
from ..data.english import english_word_list
from .transformer_model import load_encoder, resolve_base

ENGLISH_WORDS = 20_000  # ordinary English words whose pieces come after the training data's
BATCH = 1024


def base_vocabulary(base: str) -> tuple[Path, list[str]]:
    """The base model's folder and its WordPiece vocabulary, in id order."""
    source, _ = resolve_base(base)
    try:
        tokenizer = WordPieceTokenizer.from_pretrained_dir(source)
    except (OSError, ValueError) as exc:
        raise BuildError(f"word pieces need a WordPiece tokenizer: {source}: {exc}") from None
    return source, [tokenizer.id_to_token(i) or "" for i in range(tokenizer.vocab_size)]


def select_pieces(vocabulary: list[str], tokens: Iterable[str], max_pieces: int, english: Iterable[str] = ()) -> list[str]:
    """At most `max_pieces` pieces of `vocabulary`, in its order: every single character the
    tokens use (and its ``##`` form), so that every such token still splits into pieces; then the
    pieces of `tokens`, most frequent first; then those of the `english` words, in their order."""
    known = {p for p in vocabulary if p and not p.startswith("[")}
    longest = max(len(p) for p in known)
    counts = Counter(tokens)
    keep: set[str] = set()
    for ch in sorted({c for tok in counts for c in tok}):
        keep.update(form for form in (ch, CONTINUATION + ch) if form in known)
    if len(keep) > max_pieces:
        raise BuildError(f"{max_pieces:,} word pieces cannot hold the {len(keep):,} single characters of the training texts")
    ranked: Counter[str] = Counter()
    for tok, n in counts.items():
        for piece in word_pieces(tok, known, longest):
            ranked[piece] += n
    order = [p for p, _ in sorted(ranked.items(), key=lambda kv: (-kv[1], kv[0]))]
    order += [p for word in english for p in word_pieces(word, known, longest)]
    for piece in order:
        if len(keep) >= max_pieces:
            break
        keep.add(piece)
    return [p for p in vocabulary if p in keep]


def piece_vectors(source: Path, vocabulary: list[str], pieces: list[str]) -> np.ndarray:
    """[pieces, hidden]: each piece's encoder output alone (``[CLS] piece [SEP]``), centred."""
    index = {p: i for i, p in enumerate(vocabulary)}
    cls, sep = index.get("[CLS]"), index.get("[SEP]")
    if cls is None or sep is None:
        raise BuildError(f"{source}: the vocabulary has no [CLS] or [SEP]")
    encoder = load_encoder(source).eval()
    ids = torch.tensor([index[p] for p in pieces])
    out = []
    with torch.no_grad():
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            inputs = torch.stack([torch.full_like(chunk, cls), chunk, torch.full_like(chunk, sep)], 1)
            out.append(encoder(input_ids=inputs, attention_mask=torch.ones_like(inputs)).last_hidden_state[:, 1].numpy())
    table = np.concatenate(out).astype(np.float64)
    return table - table.mean(0)


def piece_block(base: str, tokens: Iterable[str], max_pieces: int) -> tuple[list[str], np.ndarray]:
    """The pieces a BoW tier ships (vocabulary order) and their centred vectors, for the training
    texts' `tokens` (repeats counted)."""
    source, vocabulary = base_vocabulary(base)
    pieces = select_pieces(vocabulary, tokens, max_pieces, english_word_list(ENGLISH_WORDS))
    return pieces, piece_vectors(source, vocabulary, pieces)
