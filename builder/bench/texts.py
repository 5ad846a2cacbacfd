"""Texts of exact token counts for the benchmarks: cut from a fixed pool of plain English
sentences (``builder/bench/bench_pool.txt``) with the bundle's own tokenizer, so "16 tokens" means
16 ids into the model, [CLS] and [SEP] included."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from runtime_py.errors import IntentKitError

POOL = Path(__file__).with_name("bench_pool.txt")


def read_pool(path: Path = POOL) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def cut_texts(count_tokens: Callable[[str], int], length: int, n: int, pool: Sequence[str] | None = None) -> list[str]:
    """`n` distinct texts of exactly `length` tokens as `count_tokens` counts them.

    Text k takes words in order from the pool's sentences starting at sentence k (wrapping
    around), skipping a word that would overshoot, until the count is `length`.
    """
    sentences = list(pool) if pool is not None else read_pool()
    if not sentences:
        raise IntentKitError("the benchmark's sentence pool is empty")
    words = [w for s in sentences for w in s.split()]
    starts = [sum(len(s.split()) for s in sentences[:k]) for k in range(len(sentences))]
    out: list[str] = []
    for k in range(n):
        start = starts[k % len(starts)]
        chosen: list[str] = []
        for step in range(len(words)):
            word = words[(start + step) % len(words)]
            candidate = " ".join(chosen + [word])
            got = count_tokens(candidate)
            if got <= length:
                chosen.append(word)
            if got == length:
                break
        text = " ".join(chosen)
        if count_tokens(text) != length:
            raise IntentKitError(f"could not cut a text of exactly {length} tokens from the benchmark pool (got {count_tokens(text)})")
        out.append(text)
    return out


def bench_sets(count_tokens: Callable[[str], int], lengths: dict[str, int], n: int) -> dict[str, list[str]]:
    """{set name: `n` texts of its length}, e.g. {"short": 16, "long": 64}."""
    return {name: cut_texts(count_tokens, length, n) for name, length in lengths.items()}
