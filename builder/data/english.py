"""Ordinary English words, most frequent first (``wordfreq``): what a vocabulary keeps after the
training data's own words, for the transformer's pruned vocabulary and the BoW tier's word pieces."""

from __future__ import annotations

from ..errors import BuildError

DEFAULT_ENGLISH_WORDS = 50_000
# wordfreq's word list ships inside the wheel: no download at build time.
WORDFREQ_PIN = "wordfreq==3.1.1"


def english_word_list(n: int = DEFAULT_ENGLISH_WORDS) -> list[str]:
    """The `n` most frequent English words according to ``wordfreq``."""
    try:
        from wordfreq import top_n_list
    except ImportError:
        raise BuildError(f"an English word list needs the package wordfreq (pip install {WORDFREQ_PIN})") from None
    return top_n_list("en", n)
