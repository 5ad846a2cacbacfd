"""The bag-of-words tier: a linear classifier whose weights ship as JSON (``bow.json``)."""

from __future__ import annotations

import json
import math
from operator import mul
from pathlib import Path
from typing import Any, Mapping, Sequence

from .calibration import softmax
from .errors import BundleError
from .features import FeatureConfig, Vectorizer

BOW_FORMAT = "bow"
BOW_FORMAT_VERSION = 1


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
    def from_json(cls, data: Mapping[str, Any], where: str = "bow.json") -> "BowModel":
        """Validate a parsed ``bow.json`` and build the model; errors name `where` and the field."""
        if not isinstance(data, Mapping):
            raise BundleError(f"{where}: expected a JSON object")
        if data.get("format") != BOW_FORMAT:
            raise BundleError(f"{where}: not a bag-of-words model (format={data.get('format')!r})")
        version = data.get("format_version")
        if version != BOW_FORMAT_VERSION:
            raise BundleError(f"{where}: format_version {version!r} is not supported (this runtime reads {BOW_FORMAT_VERSION})")
        try:
            labels = data["labels"]
            vocab = data["vocab"]
            weights = data["weights"]
            bias = data["bias"]
            config = FeatureConfig.from_json(data["features"], f"{where}: features")
        except KeyError as exc:
            raise BundleError(f"{where}: missing field {exc.args[0]!r}") from None
        temperature = data.get("temperature", 1.0)
        idf = data.get("idf")
        n_labels = len(labels)
        if n_labels < 2 or len(set(labels)) != n_labels:
            raise BundleError(f"{where}: labels must be at least two distinct names")
        if len(bias) != n_labels:
            raise BundleError(f"{where}: bias has {len(bias)} values for {n_labels} labels")
        if len(weights) != len(vocab):
            raise BundleError(f"{where}: weights has {len(weights)} rows for a vocabulary of {len(vocab)}")
        for i, row in enumerate(weights):
            if len(row) != n_labels:
                raise BundleError(f"{where}: weights[{i}] has {len(row)} values for {n_labels} labels")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
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
