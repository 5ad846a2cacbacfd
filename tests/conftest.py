"""Shared fixtures: a small generated data set and a bundle trained on it (seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytest

from builder.data.datasets import write_splits
from builder.data.generate import GenerateOptions, generate
from builder.data.templates import load_templates
from builder.train.bow import BowOptions
from runtime_py.tiers import Tier

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def finance_templates():
    return load_templates()


@pytest.fixture(scope="session")
def small_data(tmp_path_factory, finance_templates) -> Path:
    out = tmp_path_factory.mktemp("data") / "finance"
    splits, _ = generate(finance_templates, GenerateOptions(size=2200, seed=3, max_combos=30))
    write_splits(out, splits, {"slots.json": finance_templates.slot_spec()})
    return out


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory, small_data) -> Path:
    from builder.pipeline.bow_tier import train_bow_into_bundle

    out = tmp_path_factory.mktemp("bundles") / "finance"
    train_bow_into_bundle(small_data, out, BowOptions(epochs=3), progress=False)
    return out


class ScriptedTier(Tier):
    """A tier that returns fixed probabilities, to test routing decisions exactly."""

    kind = "scripted"

    def __init__(self, name: str, labels: Sequence[str], probs: Sequence[float] | Exception) -> None:
        self.name = name
        self.labels = list(labels)
        self.temperature = 1.0
        self.probs = probs
        self.calls = 0

    def logits(self, text: str) -> list[float]:
        return list(self.probabilities(text))

    def probabilities(self, text: str) -> list[float]:
        self.calls += 1
        if isinstance(self.probs, Exception):
            raise self.probs
        return list(self.probs)
