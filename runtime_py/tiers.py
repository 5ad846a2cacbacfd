"""Tier kinds the router can run, and how each is loaded from a bundle.

A tier turns text into calibrated probabilities over its labels. New kinds (the transformer
tier) register a loader with :func:`register_tier_kind`; the router only sees :class:`Tier`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Mapping

from .bow import BowModel
from .bundle import TierSpec, tier_settings, verified_path
from .errors import BundleError


class Tier(ABC):
    """One classifier in the cascade."""

    name: str
    kind: str
    labels: list[str]
    temperature: float

    @abstractmethod
    def logits(self, text: str) -> list[float]:
        """Raw (uncalibrated) scores, one per label."""

    @abstractmethod
    def probabilities(self, text: str) -> list[float]:
        """Calibrated probabilities, one per label."""

    def describe(self) -> dict[str, Any]:
        """What status() reports about this tier beyond name and kind."""
        return {"labels": len(self.labels), "temperature": self.temperature}


class BowTier(Tier):
    kind = "bow"

    def __init__(self, name: str, model: BowModel) -> None:
        self.name = name
        self.model = model
        self.labels = model.labels
        self.temperature = model.temperature

    def logits(self, text: str) -> list[float]:
        return self.model.logits(text)

    def probabilities(self, text: str) -> list[float]:
        return self.model.probabilities(text)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "vocab_size": len(self.model.vectorizer.vocab),
            "features": self.model.config.to_json(),
            "idf": self.model.vectorizer.idf is not None,
        }


# loader(bundle_dir, spec, check_hash, environ): environ holds the INTENT_* settings (os.environ
# unless the Router was given another mapping).
TierLoader = Callable[[Path, TierSpec, bool, Mapping[str, str]], Tier]
_LOADERS: dict[str, TierLoader] = {}


def register_tier_kind(kind: str, loader: TierLoader) -> None:
    """Make tiers of `kind` loadable; `loader(bundle_dir, spec, check_hash, environ)` returns a Tier."""
    _LOADERS[kind] = loader


def load_tier(bundle_dir: Path, spec: TierSpec, check_hash: bool = True, environ: Mapping[str, str] | None = None) -> Tier:
    loader = _LOADERS.get(spec.kind)
    if loader is None:
        raise BundleError(f"tier {spec.name!r}: kind {spec.kind!r} is not supported by this runtime (known: {sorted(_LOADERS)})")
    return loader(bundle_dir, spec, check_hash, os.environ if environ is None else environ)


def _load_bow(bundle_dir: Path, spec: TierSpec, check_hash: bool, environ: Mapping[str, str]) -> Tier:
    tier_settings(spec)  # the model file is listed
    return BowTier(spec.name, BowModel.load(verified_path(bundle_dir, spec.files["model"], check_hash)))


def _load_transformer(bundle_dir: Path, spec: TierSpec, check_hash: bool, environ: Mapping[str, str]) -> Tier:
    # Imported here: runtime_py must import without numpy/onnxruntime (Pyodide, BoW-only installs).
    from .transformer import load_transformer_tier

    return load_transformer_tier(bundle_dir, spec, check_hash, environ=environ)


register_tier_kind("bow", _load_bow)
register_tier_kind("transformer", _load_transformer)
