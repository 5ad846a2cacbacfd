"""The bag-of-words tier: a linear classifier whose weights ship as JSON (``bow.json``).

Format version 2 packs ``weights`` and ``idf`` as little-endian float32 in base64
(:func:`pack_float32`): the exact float32 values the model was trained with, in a third of the
bytes of decimal text, and decoded by a browser without parsing a million numbers
(docs/BUNDLE.md). Version 1 files (plain JSON lists) still load.
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
BOW_FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
REQUIRED_FIELDS = ("labels", "vocab", "weights", "bias", "features")
PACKED_DTYPE = "float32"


def pack_float32(values: Sequence[float], shape: Sequence[int]) -> dict[str, Any]:
    """`values` (row-major, ``prod(shape)`` of them) as a packed array: float32, little-endian, base64."""
    packed = array("f", values)
    if len(packed) != math.prod(shape):
        raise ValueError(f"{len(packed)} values for shape {list(shape)}")
    if sys.byteorder == "big":
        packed.byteswap()
    return {"dtype": PACKED_DTYPE, "shape": list(shape), "base64": base64.b64encode(packed.tobytes()).decode("ascii")}


def _count(value: Any) -> Any:
    return len(value) if isinstance(value, list) else "no list of"


def unpack_floats(value: Any, shape: tuple[int] | tuple[int, int], where: str) -> list[float]:
    """A field of ``prod(shape)`` numbers, row-major: a packed array (version 2) or (nested) lists."""
    if isinstance(value, Mapping):
        if value.get("dtype") != PACKED_DTYPE:
            raise BundleError(f"{where}: dtype {value.get('dtype')!r} is not supported (expected {PACKED_DTYPE!r})")
        given = value.get("shape")
        if not (isinstance(given, list) and len(given) == len(shape) and all(is_integer(d) and d == n for d, n in zip(given, shape))):
            raise BundleError(f"{where}: shape {given!r} does not match the expected {list(shape)}")
        text = value.get("base64")
        if not isinstance(text, str):
            raise BundleError(f"{where}: invalid base64 (expected a string, got {type(text).__name__})")
        try:
            raw = base64.b64decode(text, validate=True)  # RFC 4648: padded, no whitespace
        except (binascii.Error, ValueError) as exc:
            raise BundleError(f"{where}: invalid base64 ({exc})") from None
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


class BowModel:
    """Loaded ``bow.json``: ``logits(text)`` and calibrated ``probabilities(text)``."""

    def __init__(
        self,
        labels: Sequence[str],
        config: FeatureConfig,
        vocab: Sequence[str],
        weights: Sequence[Sequence[float]],
        bias: Sequence[float],
        temperature: float = 1.0,
        idf: Sequence[float] | None = None,
    ) -> None:
        self.labels = list(labels)
        self.vectorizer = Vectorizer(config, vocab, idf)
        # Feature-major rows as tuples: the hot loop transposes the few rows a text hits.
        self.rows = [tuple(map(float, row)) for row in weights]
        self.bias = tuple(map(float, bias))
        self.temperature = float(temperature)

    @property
    def config(self) -> FeatureConfig:
        return self.vectorizer.config

    def logits(self, text: str) -> list[float]:
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
        flat = unpack_floats(data["weights"], (len(vocab), n_labels), f"{where}: weights")
        weights = [flat[i : i + n_labels] for i in range(0, len(flat), n_labels)]
        idf = data.get("idf")
        if idf is not None:
            idf = unpack_floats(idf, (len(vocab),), f"{where}: idf")
        temperature = data.get("temperature")
        temperature = 1.0 if temperature is None else temperature  # null counts as absent
        if not is_number(temperature) or temperature <= 0:
            raise BundleError(f"{where}: temperature must be a positive number, got {temperature!r}")
        try:
            return cls(labels, config, vocab, weights, bias, temperature, idf)
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
