"""BERT's WordPiece split of one word: greedy longest match first over a set of pieces.

The tokenizer (:mod:`runtime_py.wordpiece`) and the BoW tier's word pieces
(:mod:`runtime_py.features`) split words with it; this module imports nothing, so the BoW tier
does not load the tokenizer's Unicode tables.
"""

from __future__ import annotations

from collections.abc import Container


def split_word(word: str, pieces: Container[str], max_len: int, prefix: str = "##") -> list[str] | None:
    """`word` as pieces of `pieces`: from the start, each the longest that is in `pieces` (with
    `prefix` before a piece that does not start the word); None when some part is not covered.
    `max_len` bounds a piece's length without `prefix` (any larger value gives the same split)."""
    n = len(word)
    out: list[str] = []
    start = 0
    while start < n:
        end = min(n, start + max_len)
        while end > start:
            sub = word[start:end] if start == 0 else prefix + word[start:end]
            if sub in pieces:
                out.append(sub)
                break
            end -= 1
        else:
            return None
        start = end
    return out
