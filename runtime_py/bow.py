"""The bag-of-words tier: a linear classifier whose weights ship as JSON (``bow.json``).

Format version 2 packs ``weights`` and ``idf`` as little-endian float32 in base64
(:func:`pack_float32`): the exact float32 values the model was trained with, in a third of the
bytes of decimal text, and decoded by a browser without parsing a million numbers
(docs/BUNDLE.md). Version 1 files (plain JSON lists) still load. Version 3 adds int8 weights with
one float32 scale per feature row (:func:`pack_int8`, a quarter of float32's bytes) and the
``token_l2`` normalisation, whose per-token shares the model caches (:meth:`BowModel.logits`).
Version 4 adds ``features.word_pieces``: a block of word-piece rows averaged over the text's pieces
(runtime_py/features.py), written only by a model that has one.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sys
from array import array
from operator import mul
from pathlib import Path
from typing import Any, Mapping, Sequence

from .calibration import softmax
from .errors import BundleError
from .features import FeatureConfig, Vectorizer
from .jsontypes import is_integer, is_number, is_string_list

BOW_FORMAT = "bow"
BOW_FORMAT_VERSION = 3
PIECES_FORMAT_VERSION = 4  # what a model with word pieces is written as
READABLE_VERSIONS = (1, 2, 3, 4)
REQUIRED_FIELDS = ("labels", "vocab", "weights", "bias", "features")
PACKED_DTYPE = "float32"
INT8_DTYPE = "int8"
TOKEN_CACHE_SIZE = 4096  # tokens (and word n-grams) whose shares a token_l2 model keeps; cleared whole when full
_NOT_IN_VOCAB: tuple[None, float] = (None, 0.0)


def pack_float32(values: Sequence[float], shape: Sequence[int]) -> dict[str, Any]:
    """`values` (row-major, ``prod(shape)`` of them) as a packed array: float32, little-endian, base64."""
    packed = array("f", values)
    if len(packed) != math.prod(shape):
        raise ValueError(f"{len(packed)} values for shape {list(shape)}")
    if sys.byteorder == "big":
        packed.byteswap()
    return {"dtype": PACKED_DTYPE, "shape": list(shape), "base64": base64.b64encode(packed.tobytes()).decode("ascii")}


def pack_int8(values: Sequence[int], shape: Sequence[int]) -> dict[str, Any]:
    """Whole numbers in [-127, 127] (row-major) as a packed int8 array: one byte each, base64."""
    packed = array("b", values)
    if len(packed) != math.prod(shape):
        raise ValueError(f"{len(packed)} values for shape {list(shape)}")
    return {"dtype": INT8_DTYPE, "shape": list(shape), "base64": base64.b64encode(packed.tobytes()).decode("ascii")}


def quantize_rows(weights: Sequence[Sequence[float]]) -> tuple[list[int], list[float]]:
    """Symmetric int8 per row: ``scale = max|w| / 127`` rounded to float32, ``q = round(w / scale)``.
    Returns the flat integers and the scales; row i's weights are then ``q * scale`` exactly."""
    flat: list[int] = []
    scales: list[float] = []
    for row in weights:
        top = max((abs(w) for w in row), default=0.0)
        scale = array("f", [top / 127.0])[0] if top > 0 else 0.0
        scales.append(scale)
        flat.extend(max(-127, min(127, round(w / scale))) if scale else 0 for w in row)
    return flat, scales


def _decode_base64(value: Mapping[str, Any], where: str) -> bytes:
    text = value.get("base64")
    if not isinstance(text, str):
        raise BundleError(f"{where}: invalid base64 (expected a string, got {type(text).__name__})")
    try:
        return base64.b64decode(text, validate=True)  # RFC 4648: padded, no whitespace
    except (binascii.Error, ValueError) as exc:
        raise BundleError(f"{where}: invalid base64 ({exc})") from None


def _check_shape(value: Mapping[str, Any], shape: Sequence[int], where: str) -> None:
    given = value.get("shape")
    if not (isinstance(given, list) and len(given) == len(shape) and all(is_integer(d) and d == n for d, n in zip(given, shape))):
        raise BundleError(f"{where}: shape {given!r} does not match the expected {list(shape)}")


def unpack_int8(value: Any, shape: tuple[int, int], where: str) -> array:
    """A packed int8 array of ``prod(shape)`` values in [-127, 127], as ``array("b")``."""
    _check_shape(value, shape, where)
    raw = _decode_base64(value, where)
    if len(raw) != math.prod(shape):
        raise BundleError(f"{where}: {len(raw)} bytes for shape {list(shape)} (expected {math.prod(shape)})")
    ints = array("b")
    ints.frombytes(raw)
    if -128 in ints:
        raise BundleError(f"{where}: int8 values must lie in [-127, 127]")
    return ints


class _DequantizedRows(dict):  # type: ignore[type-arg]
    """Row i of int8 weights as float64 ``q * scale`` (exact), made on first use."""

    def __init__(self, ints: array, scales: Sequence[float], width: int) -> None:
        super().__init__()
        self.ints, self.scales, self.width = ints, scales, width

    def __missing__(self, i: int) -> tuple[float, ...]:
        s, n = self.scales[i], self.width
        row = tuple([q * s for q in self.ints[i * n : (i + 1) * n]])
        self[i] = row
        return row


def _count(value: Any) -> Any:
    return len(value) if isinstance(value, list) else "no list of"


def unpack_floats(value: Any, shape: tuple[int] | tuple[int, int], where: str) -> list[float]:
    """A field of ``prod(shape)`` numbers, row-major: a packed array (version 2) or (nested) lists."""
    if isinstance(value, Mapping):
        if value.get("dtype") != PACKED_DTYPE:
            raise BundleError(f"{where}: dtype {value.get('dtype')!r} is not supported (expected {PACKED_DTYPE!r}"
                              f"{' or ' + repr(INT8_DTYPE) if len(shape) == 2 else ''})")
        _check_shape(value, shape, where)
        raw = _decode_base64(value, where)
        if len(raw) != 4 * math.prod(shape):
            raise BundleError(f"{where}: {len(raw)} bytes for shape {list(shape)} (expected {4 * math.prod(shape)})")
        floats = array("f")
        floats.frombytes(raw)
        if sys.byteorder == "big":
            floats.byteswap()
        packed: list[float] = floats.tolist()  # already Python floats: only finiteness to check
        if not all(map(math.isfinite, packed)):
            raise BundleError(f"{where}: every value must be a finite number")
        return packed
    if len(shape) == 1:
        if not isinstance(value, list) or len(value) != shape[0]:
            raise BundleError(f"{where} has {_count(value)} entries for a vocabulary of {shape[0]}")
        out: list[Any] = value
    else:
        if not isinstance(value, list) or len(value) != shape[0]:
            raise BundleError(f"{where} has {_count(value)} rows for a vocabulary of {shape[0]}")
        out = []
        for i, row in enumerate(value):
            if not isinstance(row, list) or len(row) != shape[1]:
                raise BundleError(f"{where}[{i}] has {_count(row)} values for {shape[1]} labels")
            out.extend(row)
    if not all(map(is_number, out)):
        raise BundleError(f"{where}: every value must be a finite number")
    return [float(v) for v in out]


# A token's shares and squared norms: words, characters, then word pieces (share, number of pieces).
_TokenShare = tuple[tuple[float, ...] | None, float, tuple[float, ...] | None, float, tuple[float, ...] | None, int]


class BowModel:
    """Loaded ``bow.json``: ``logits(text)`` and calibrated ``probabilities(text)``.

    `weights` are feature-major rows of floats, or, with `scales`, the flat int8 values of every
    row (row i's weights are ``q * scales[i]``, dequantized when a text first hits the row)."""

    def __init__(
        self,
        labels: Sequence[str],
        config: FeatureConfig,
        vocab: Sequence[str],
        weights: Sequence[Sequence[float]] | Sequence[int],
        bias: Sequence[float],
        temperature: float = 1.0,
        idf: Sequence[float] | None = None,
        scales: Sequence[float] | None = None,
    ) -> None:
        self.labels = list(labels)
        self.vectorizer = Vectorizer(config, vocab, idf)
        width = len(self.labels)
        self.rows: Any
        if scales is not None:
            if len(scales) != len(vocab) or len(weights) != len(vocab) * width:
                raise ValueError(f"{len(weights)} int8 weights and {len(scales)} scales for {len(vocab)} features x {width} labels")
            ints = weights if isinstance(weights, array) else array("b", weights)  # type: ignore[arg-type]
            self.rows = _DequantizedRows(ints, [float(v) for v in scales], width)
        else:
            # Feature-major rows as tuples: the hot loop transposes the few rows a text hits.
            self.rows = [tuple(map(float, row)) for row in weights]  # type: ignore[arg-type]
        self.bias = tuple(map(float, bias))
        self.temperature = float(temperature)
        self.quantized = scales is not None
        self._tokens: dict[str, _TokenShare] = {}
        self._grams: dict[str, tuple[tuple[float, ...] | None, float]] = {}

    @property
    def config(self) -> FeatureConfig:
        return self.vectorizer.config

    def _share(self, indices: list[int], values: list[float]) -> tuple[float, ...] | None:
        """``sum_k values[k] * row(indices[k])``, label by label, in index order (None if empty)."""
        if not indices:
            return None
        rows = self.rows
        return tuple([sum(map(mul, column, values)) for column in zip(*[rows[i] for i in indices])])

    def _scaled(self, i: int, value: float) -> tuple[tuple[float, ...], float]:
        """Feature i with `value`, alone in a word n-gram's place: its share and squared value."""
        return tuple([w * value for w in self.rows[i]]), value * value

    def _repeated_grams(self, grams: list[str], words: list[tuple[float, ...]], q: float) -> float:
        """The n-gram group of a text that repeats an n-gram: appends each distinct n-gram's share
        to `words` in first-seen order and returns `q` plus their squared values, added in that order."""
        indices, values, _ = self.vectorizer.group_values(grams)
        for i, v in zip(indices, values):
            share, squared = self._scaled(i, v)
            words.append(share)
            q += squared
        return q

    def _token_share(self, tok: str) -> _TokenShare:
        vec = self.vectorizer
        (wi, wv, wq), (ci, cv, cq) = vec.token_groups(tok)
        pieces, m = None, 0
        if vec.config.word_pieces:
            pi, pv, _, m = vec.piece_group(tok)
            pieces = self._share(pi, pv)
        return self._share(wi, wv), wq, self._share(ci, cv), cq, pieces, m

    def _grouped_logits(self, text: str) -> list[float]:
        """``token_l2``: ``bias + words * (1 / sqrt(qw)) + chars * (1 / sqrt(qc)) + pieces * (1 / m)``,
        where each token's shares (and squared norms, numbers of pieces) come from a cache keyed by the token."""
        vec = self.vectorizer
        toks = vec.extractor.tokens(text)
        cache = self._tokens
        words: list[tuple[float, ...]] = []
        chars: list[tuple[float, ...]] = []
        pieces: list[tuple[float, ...]] = []
        qw = qc = 0.0
        m = 0
        for tok in toks:
            hit = cache.get(tok)
            if hit is None:
                if len(cache) >= TOKEN_CACHE_SIZE:
                    cache.clear()
                hit = cache[tok] = self._token_share(tok)
            if hit[0] is not None:
                words.append(hit[0])
                qw += hit[1]
            if hit[2] is not None:
                chars.append(hit[2])
                qc += hit[3]
            if hit[4] is not None:
                pieces.append(hit[4])
                m += hit[5]
        if len(toks) > 1 and vec.config.ngram_max > 1:
            # The longer n-grams' group, one share per distinct n-gram in first-seen order. An
            # n-gram seen once (nearly always) costs one lookup in a cache keyed by its string.
            grams = vec.extractor.long_grams(toks)
            if len(set(grams)) < len(grams):
                qw = self._repeated_grams(grams, words, qw)
            else:
                units = self._grams
                for gram in grams:
                    unit = units.get(gram)
                    if unit is None:
                        if len(units) >= TOKEN_CACHE_SIZE:
                            units.clear()
                        indices, values, _ = vec.group_values((gram,))
                        unit = units[gram] = self._scaled(indices[0], values[0]) if indices else _NOT_IN_VOCAB
                    if unit[0] is not None:
                        words.append(unit[0])
                        qw += unit[1]
        out = list(self.bias)
        for parts, scale in ((words, qw and 1.0 / math.sqrt(qw)), (chars, qc and 1.0 / math.sqrt(qc)), (pieces, m and 1.0 / m)):
            if parts:
                out = [o + sum(column) * scale for o, column in zip(out, zip(*parts))]
        return out

    def logits(self, text: str) -> list[float]:
        if self.vectorizer.config.norm == "token_l2":
            return self._grouped_logits(text)
        rows = self.rows
        if self.vectorizer.counts_only:
            # Summing the rows of every occurrence is the count-vector product, ~2x faster.
            return [sum(column) for column in zip(self.bias, *[rows[i] for i in self.vectorizer.occurrences(text)])]
        indices, values = self.vectorizer.transform(text)
        if not indices:
            return list(self.bias)
        hit = [rows[i] for i in indices]
        return [b + sum(map(mul, column, values)) for b, column in zip(self.bias, zip(*hit))]

    def probabilities(self, text: str) -> list[float]:
        return softmax(self.logits(text), self.temperature)

    @classmethod
    def from_json(cls, data: Any, where: str = "bow.json") -> "BowModel":
        """Validate a parsed ``bow.json`` and build the model; errors name `where` and the field.

        docs/schema/bow.schema.json states the same rules; tests/fixtures/conformance holds the
        cases both runtimes must agree on."""
        if not isinstance(data, Mapping):
            raise BundleError(f"{where}: expected a JSON object")
        fmt = data.get("format")
        if fmt != BOW_FORMAT:
            raise BundleError(f"{where}: format {fmt!r}: not a bag-of-words model (expected {BOW_FORMAT!r})")
        version = data.get("format_version")
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise BundleError(f"{where}: format_version {version!r} is not supported (this runtime reads "
                              f"{', '.join(map(str, READABLE_VERSIONS))})")
        for key in REQUIRED_FIELDS:
            if key not in data:
                raise BundleError(f"{where}: {key} is missing (a bow.json has {', '.join(REQUIRED_FIELDS)})")
        config = FeatureConfig.from_json(data["features"], f"{where}: features")
        if config.word_pieces and version < PIECES_FORMAT_VERSION:
            raise BundleError(f"{where}: features.word_pieces needs format_version {PIECES_FORMAT_VERSION} (this file says {version})")
        labels, vocab, bias = data["labels"], data["vocab"], data["bias"]
        if not (isinstance(labels, list) and len(labels) >= 2 and is_string_list(labels, non_empty_items=True)
                and len(set(labels)) == len(labels)):
            raise BundleError(f"{where}: labels must be a list of at least two distinct names")
        n_labels = len(labels)
        if not isinstance(vocab, list):
            raise BundleError(f"{where}: vocab must be a list of features")
        if not isinstance(bias, list) or len(bias) != n_labels:
            raise BundleError(f"{where}: bias has {_count(bias)} values for {n_labels} labels")
        if not all(map(is_number, bias)):
            raise BundleError(f"{where}: bias: every value must be a finite number")
        packed_weights = data["weights"]
        scales = data.get("scales")
        weights: Any
        if isinstance(packed_weights, Mapping) and packed_weights.get("dtype") == INT8_DTYPE:
            weights = unpack_int8(packed_weights, (len(vocab), n_labels), f"{where}: weights")
            if scales is None:
                raise BundleError(f"{where}: scales is missing (int8 weights need one float32 scale per feature)")
            scales = unpack_floats(scales, (len(vocab),), f"{where}: scales")
            if any(v < 0 for v in scales):
                raise BundleError(f"{where}: scales: every value must be >= 0")
        else:
            if scales is not None:
                raise BundleError(f"{where}: scales is only for int8 weights")
            flat = unpack_floats(packed_weights, (len(vocab), n_labels), f"{where}: weights")
            weights = [flat[i : i + n_labels] for i in range(0, len(flat), n_labels)]
        idf = data.get("idf")
        if idf is not None:
            idf = unpack_floats(idf, (len(vocab),), f"{where}: idf")
        temperature = data.get("temperature")
        temperature = 1.0 if temperature is None else temperature  # null counts as absent
        if not is_number(temperature) or temperature <= 0:
            raise BundleError(f"{where}: temperature must be a positive number, got {temperature!r}")
        try:
            return cls(labels, config, vocab, weights, bias, temperature, idf, scales)
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> "BowModel":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BundleError(f"{path}: file not found") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_json(data, str(path))
