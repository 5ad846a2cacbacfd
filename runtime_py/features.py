"""Bag-of-words features: the one definition that training and every runtime share.

A text becomes a sparse vector in four steps, each set by :class:`FeatureConfig`:

1. tokens: ``re.findall(token_pattern, text.lower())`` (ASCII pattern by default, so the
   same tokens come out of Python's and JavaScript's regex engines);
2. features: word n-grams ``a``, ``a_b`` up to ``ngram_max``, plus, when ``char_ngrams`` is
   set, character n-grams of each token padded with spaces, prefixed with ``#`` (``"# ap"``);
3. values: raw counts (``tf="count"``), ``1 + ln(count)`` (``"log"``) or 1 (``"binary"``),
   times the feature's idf when the vocabulary ships one;
4. an optional normalisation over the features that are in the vocabulary: ``"l2"`` divides by the
   Euclidean norm; ``"token_l2"`` (format version 3) splits the text into *groups* (each token:
   its unigram and its character n-grams; then the longer word n-grams), takes values per group,
   and divides the word block and the character block each by ``sqrt(sum of its groups' squared
   norms)``. Each token's share is then a function of the token alone, so runtimes cache it.

docs/BUNDLE.md describes the same steps for the JavaScript runtime.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from .errors import BundleError
from .jsontypes import is_integer
from .pieces import split_word

TF_MODES = ("count", "log", "binary")
NORMS = (None, "l2", "token_l2")
PIECE_MARK = "~"  # vocabulary entries "~bank", "~##ing": word pieces (word_pieces only)
CONTINUATION = "##"
MAX_WORD_CHARS = 100  # BERT's: a longer token has no pieces


def word_pieces(word: str, pieces: Container[str], max_len: int) -> list[str]:
    """BERT's greedy longest-match-first WordPiece of `word` over `pieces` (``##`` marks a piece
    that continues a word); [] when some part of the word is not covered (BERT's [UNK]) or the word
    is longer than 100 characters. `max_len`: the longest piece, ``##`` not counted."""
    if len(word) > MAX_WORD_CHARS:
        return []
    return split_word(word, pieces, max_len, CONTINUATION) or []


@dataclass(frozen=True)
class FeatureConfig:
    """How text turns into features; stored in ``bow.json`` under ``"features"``."""

    token_pattern: str = r"[A-Za-z0-9']+"
    lowercase: bool = True
    ngram_max: int = 2
    char_ngrams: tuple[int, int] | None = None
    tf: str = "count"
    norm: str | None = None
    word_pieces: bool = False

    def __post_init__(self) -> None:
        # Each message starts with the setting's name: from_json prefixes it with "features.".
        if not is_integer(self.ngram_max) or self.ngram_max < 1:
            raise ValueError(f"ngram_max must be >= 1, got {self.ngram_max!r}")
        if self.char_ngrams is not None:
            pair = self.char_ngrams
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(map(is_integer, pair)) and 1 <= pair[0] <= pair[1]):
                raise ValueError(f"char_ngrams must be (lo, hi) with 1 <= lo <= hi, got {pair!r}")
        if self.tf not in TF_MODES:
            raise ValueError(f"tf must be one of {TF_MODES}, got {self.tf!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not isinstance(self.word_pieces, bool):
            raise ValueError(f"word_pieces must be true or false, got {self.word_pieces!r}")
        if self.word_pieces and self.norm != "token_l2":
            raise ValueError(f'word_pieces needs norm "token_l2", got norm {self.norm!r}')
        if not isinstance(self.lowercase, bool):
            raise ValueError(f"lowercase must be true or false, got {self.lowercase!r}")
        if not isinstance(self.token_pattern, str):
            raise ValueError(f"token_pattern must be a string, got {self.token_pattern!r}")
        try:
            groups = re.compile(self.token_pattern).groups
        except re.error as exc:
            raise ValueError(f"token_pattern {self.token_pattern!r} is not a valid regular expression ({exc})") from None
        if groups > 1:  # findall would return tuples; the JavaScript runtime refuses these too
            raise ValueError(f"token_pattern {self.token_pattern!r} has {groups} groups; at most one is supported")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["char_ngrams"] = list(self.char_ngrams) if self.char_ngrams else None
        if not self.word_pieces:
            del data["word_pieces"]  # a file without pieces stays version 3
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "features") -> "FeatureConfig":
        """Validate bow.json's ``features`` object; errors name `where` and the setting."""
        if not isinstance(data, Mapping):
            raise BundleError(f"{where}: expected an object")
        known = {"token_pattern", "lowercase", "ngram_max", "char_ngrams", "tf", "norm", "word_pieces"}
        unknown = set(data) - known
        if unknown:
            raise BundleError(f"{where}: unknown feature settings {sorted(unknown)}")
        kwargs = dict(data)
        # JSON cannot tell 2 from 2.0 (JavaScript reads both as 2): whole floats are integers.
        if is_integer(kwargs.get("ngram_max")):
            kwargs["ngram_max"] = int(kwargs["ngram_max"])
        pair = kwargs.get("char_ngrams")
        if isinstance(pair, list):
            kwargs["char_ngrams"] = tuple(int(x) if is_integer(x) else x for x in pair)
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise BundleError(f"{where}.{exc}") from None


class FeatureExtractor:
    """Turns text into feature strings (with repeats) according to a :class:`FeatureConfig`."""

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self._findall = re.compile(config.token_pattern).findall

    def tokens(self, text: str) -> list[str]:
        return self._findall(text.lower() if self.config.lowercase else text)

    def char_grams(self, tok: str) -> list[str]:
        """``#``-prefixed character n-grams of one token padded with spaces (none if not configured)."""
        if not self.config.char_ngrams:
            return []
        lo, hi = self.config.char_ngrams
        padded = f" {tok} "
        size = len(padded)
        return ["#" + padded[i : i + n] for n in range(lo, min(hi, size) + 1) for i in range(size - n + 1)]

    def long_grams(self, toks: Sequence[str]) -> list[str]:
        """Word n-grams for n = 2..ngram_max, joined with ``_``."""
        if self.config.ngram_max == 2:
            return [f"{a}_{b}" for a, b in zip(toks, toks[1:])]
        return ["_".join(toks[i : i + n]) for n in range(2, self.config.ngram_max + 1) for i in range(len(toks) - n + 1)]

    def features(self, text: str) -> list[str]:
        toks = self.tokens(text)
        feats = list(toks)
        for n in range(2, self.config.ngram_max + 1):
            feats.extend("_".join(toks[i : i + n]) for i in range(len(toks) - n + 1))
        if self.config.char_ngrams:
            lo, hi = self.config.char_ngrams
            for tok in toks:
                padded = f" {tok} "
                size = len(padded)
                for n in range(lo, min(hi, size) + 1):
                    feats.extend("#" + padded[i : i + n] for i in range(size - n + 1))
        return feats


class Vectorizer:
    """Maps text to ``(indices, values)`` over a fixed vocabulary."""

    def __init__(self, config: FeatureConfig, vocab: Sequence[str], idf: Sequence[float] | None = None) -> None:
        if idf is not None and len(idf) != len(vocab):
            raise ValueError(f"idf has {len(idf)} entries for a vocabulary of {len(vocab)}")
        self.config = config
        self.extractor = FeatureExtractor(config)
        self.vocab = list(vocab)
        for i, feat in enumerate(self.vocab):
            if not isinstance(feat, str):
                raise ValueError(f"vocab[{i}] is not a string")
        self.index = {feat: i for i, feat in enumerate(self.vocab)}
        if len(self.index) != len(self.vocab):
            raise ValueError("vocab has duplicate features")
        self.idf = list(idf) if idf is not None else None
        # The word pieces ("~" stripped; word_pieces only): the set the tokens are split over.
        self.pieces = frozenset(f[len(PIECE_MARK):] for f in self.vocab if f.startswith(PIECE_MARK)) if config.word_pieces else frozenset()
        self.max_piece = max((len(p.removeprefix(CONTINUATION)) for p in self.pieces), default=0)

    @property
    def counts_only(self) -> bool:
        """True when every value is a plain count (reference recipe): see :meth:`occurrences`."""
        return self.config.tf == "count" and self.idf is None and self.config.norm is None

    def occurrences(self, text: str) -> list[int]:
        """Vocabulary index of every feature occurrence, repeats included: with count values the
        sparse vector is just this list, and a linear layer is a sum of the rows it names."""
        return [i for i in map(self.index.get, self.extractor.features(text)) if i is not None]

    def group_values(self, feats: Iterable[str]) -> tuple[list[int], list[float], float]:
        """One group's vocabulary indices (first-seen order), values (tf times idf) and squared norm."""
        index = self.index
        counts: dict[int, int] = {}
        for feat in feats:
            i = index.get(feat)
            if i is not None:
                counts[i] = counts.get(i, 0) + 1
        indices = list(counts)
        tf = self.config.tf
        if tf == "count":
            values = [float(c) for c in counts.values()]
        elif tf == "log":
            values = [1.0 + math.log(c) for c in counts.values()]
        else:
            values = [1.0] * len(indices)
        if self.idf is not None:
            idf = self.idf
            values = [v * idf[i] for i, v in zip(indices, values)]
        return indices, values, sum(v * v for v in values)

    def token_groups(self, tok: str) -> tuple[tuple[list[int], list[float], float], tuple[list[int], list[float], float]]:
        """``token_l2``: one token's word group (its unigram) and character group."""
        return self.group_values((tok,)), self.group_values(self.extractor.char_grams(tok))

    def piece_group(self, tok: str) -> tuple[list[int], list[float], float, int]:
        """``word_pieces``: one token's piece group (as :meth:`group_values`) and its number of pieces."""
        pieces = word_pieces(tok, self.pieces, self.max_piece)
        return (*self.group_values([PIECE_MARK + p for p in pieces]), len(pieces))

    def transform(self, text: str) -> tuple[list[int], list[float]]:
        """Sparse vector of `text`: vocabulary indices in first-seen order, and their values."""
        if self.config.norm == "token_l2":
            return self._transform_grouped(text)
        indices, values, squared = self.group_values(self.extractor.features(text))
        if self.config.norm == "l2" and values:
            scale = math.sqrt(squared)
            values = [v / scale for v in values]
        return indices, values

    def _transform_grouped(self, text: str) -> tuple[list[int], list[float]]:
        toks = self.extractor.tokens(text)
        blocks: list[list[tuple[list[int], list[float], float]]] = [[], []]  # word groups, char groups
        for tok in toks:
            word, char = self.token_groups(tok)
            blocks[0].append(word)
            blocks[1].append(char)
        blocks[0].append(self.group_values(self.extractor.long_grams(toks)))
        scaled: list[tuple[list[tuple[list[int], list[float], float]], float]] = []
        for groups in blocks:
            q = sum(g[2] for g in groups)
            if q:
                scaled.append((groups, 1.0 / math.sqrt(q)))
        if self.config.word_pieces:
            pieces = [self.piece_group(tok) for tok in toks]
            m = sum(g[3] for g in pieces)
            if m:
                scaled.append(([g[:3] for g in pieces], 1.0 / m))
        merged: dict[int, float] = {}
        for groups, scale in scaled:
            for indices, values, _ in groups:
                for i, v in zip(indices, values):
                    merged[i] = merged.get(i, 0.0) + v * scale
        return list(merged), list(merged.values())

    def transform_many(self, texts: Iterable[str]) -> list[tuple[list[int], list[float]]]:
        return [self.transform(t) for t in texts]
