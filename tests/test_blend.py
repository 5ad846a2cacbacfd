"""Blended tiers (runtime_py/blend.py) and `builder blend` (builder/train/blend.py)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from builder.cli import main
from builder.data.datasets import read_jsonl
from builder.evaluate.tiers import evaluate
from builder.train.blend import blend_bundle, choose_weight, format_blend
from conftest import ROOT
from runtime_py import Router
from runtime_py.blend import BlendedTier, blend_setting, blend_tiers
from runtime_py.bundle import TierSpec
from runtime_py.errors import BundleError
from runtime_py.tiers import Tier

FIXTURE = ROOT / "tests" / "fixtures" / "generated" / "runtime"


class Fixed(Tier):
    """A tier that always answers the same probabilities."""

    def __init__(self, name: str, labels: list[str], probs: list[float]) -> None:
        self.name, self.kind, self.labels, self.temperature, self.probs = name, "fixed", labels, 1.0, probs

    def logits(self, text: str) -> list[float]:
        return [math.log(p) for p in self.probs]

    def probabilities(self, text: str) -> list[float]:
        return list(self.probs)


def spec(name: str, blend: object = None) -> TierSpec:
    return TierSpec(name=name, kind="fixed", files={}, extra={} if blend is None else {"blend": blend})


def test_the_blend_averages_label_by_label_whatever_the_label_order():
    own = Fixed("transformer", ["a", "b", "c"], [0.7, 0.2, 0.1])
    partner = Fixed("bow", ["c", "a", "b"], [0.6, 0.3, 0.1])  # a=0.3, b=0.1, c=0.6
    [bow, blended], problems = blend_tiers([partner, own], {"transformer": spec("transformer", {"tier": "bow", "weight": 0.5})})
    assert problems == [] and bow is partner and isinstance(blended, BlendedTier)
    assert blended.probabilities("x") == pytest.approx([0.5, 0.15, 0.35])
    assert blended.labels == ["a", "b", "c"] and blended.logits("x") == own.logits("x")
    assert blended.describe()["blend"] == {"tier": "bow", "weight": 0.5, "temperature": 1.0, "active": True}
    # a temperature recalibrates the average: softmax(log(blend) / T)
    sharp = BlendedTier(own, partner, 0.5, "bow", None, 0.5)
    expected = np.array([0.5, 0.15, 0.35]) ** 2
    assert sharp.probabilities("x") == pytest.approx(list(expected / expected.sum()))


def test_a_missing_partner_leaves_the_tier_alone_and_says_why():
    own = Fixed("transformer", ["a", "b"], [0.9, 0.1])
    [tier], problems = blend_tiers([own], {"transformer": spec("transformer", {"tier": "bow", "weight": 0.5})})
    assert problems == [] and tier.probabilities("x") == [0.9, 0.1]
    assert tier.describe()["blend"] == {"tier": "bow", "weight": 0.5, "temperature": 1.0, "active": False, "why": "tier 'bow' is not loaded"}


@pytest.mark.parametrize(
    "blend, message",
    [
        ("bow", "expected an object"),
        ({"tier": "transformer", "weight": 0.5}, "expected the name of another tier"),
        ({"tier": "bow", "weight": 1.5}, "weight: expected a number between 0 and 1"),
        ({"tier": "bow", "weight": True}, "weight: expected a number between 0 and 1"),
        ({"tier": "bow", "weight": 0.5, "temperature": 0}, "temperature: expected a positive number"),
    ],
)
def test_a_malformed_blend_is_a_problem_not_a_crash(blend, message):
    with pytest.raises(BundleError, match=message):
        blend_setting(spec("transformer", blend))
    own, bow = Fixed("transformer", ["a", "b"], [0.9, 0.1]), Fixed("bow", ["a", "b"], [0.5, 0.5])
    tiers, problems = blend_tiers([bow, own], {"transformer": spec("transformer", blend)})
    assert tiers == [bow, own] and problems[0]["where"] == "tier transformer (blend)" and message in problems[0]["error"]


def test_tiers_with_different_intents_do_not_blend():
    own, bow = Fixed("transformer", ["a", "b"], [0.9, 0.1]), Fixed("bow", ["a", "z"], [0.5, 0.5])
    tiers, problems = blend_tiers([bow, own], {"transformer": spec("transformer", {"tier": "bow", "weight": 0.5})})
    assert tiers == [bow, own] and "their intents differ" in problems[0]["error"]


def test_the_weight_is_the_most_accurate_on_validation_and_ties_keep_the_tier_alone():
    own = np.array([[0.6, 0.4], [0.4, 0.6], [0.55, 0.45]])
    partner = np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    weight, accuracy = choose_weight(own, partner, np.array([0, 1, 1]))
    assert accuracy[1.0] == pytest.approx(2 / 3) and accuracy[0.0] == 1.0 and weight == 0.8  # 0.0..0.8 all reach 1.0
    same, _ = choose_weight(own, own, np.array([0, 1, 0]))
    assert same == 1.0


@pytest.fixture()
def two_tier_bundle(tmp_path: Path) -> Path:
    source = FIXTURE / "bundle"
    if not (source / "manifest.json").is_file() or not any(t["kind"] == "transformer" for t in json.loads((source / "manifest.json").read_text())["tiers"]):
        pytest.skip("runtime fixtures with a transformer tier missing (make fixtures)")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "bundle"
    shutil.copytree(source, out)
    return out


def test_builder_blend_writes_the_weight_and_the_router_answers_with_it(two_tier_bundle: Path, capsys):
    val = read_jsonl(FIXTURE / "data" / "val.jsonl")
    report = blend_bundle(two_tier_bundle, val, weight=0.6)
    assert "weight 0.6: val accuracy" in format_blend(report) and report.temperature > 0
    entry = next(t for t in json.loads((two_tier_bundle / "manifest.json").read_text())["tiers"] if t["name"] == "transformer")
    assert entry["blend"] == {"tier": "bow", "weight": 0.6, "temperature": report.temperature}
    assert entry["threshold"] == report.threshold and "val_accuracy_by_weight" in entry["calibration"]["blend"]
    router = Router.from_bundle(two_tier_bundle, strict=True, environ={})
    tier = next(t for t in router.tiers if t.name == "transformer")
    assert isinstance(tier, BlendedTier) and tier.partner is not None
    bow = next(t for t in router.tiers if t.name == "bow")
    text = val[0].text
    alone = tier.own.probabilities(text)
    assert tier.probabilities(text) == pytest.approx(tier.mix(alone, bow.probabilities(text)))
    status = next(t for t in router.status()["tiers"] if t["name"] == "transformer")
    assert status["blend"]["active"] is True
    # eval reports the tier alone and blended; the blended figures are what the router answers with
    [tier_report] = evaluate(two_tier_bundle, read_jsonl(FIXTURE / "data" / "test.jsonl"), "transformer")
    assert tier_report["blend"]["weight"] == 0.6 and 0 <= tier_report["blend"]["accuracy"] <= 1
    # only the transformer tier loaded: it answers alone
    alone_router = Router.from_bundle(two_tier_bundle, tiers=["transformer"], environ={})
    assert alone_router.tiers[0].describe()["blend"]["active"] is False
    # --off removes it
    assert main(["blend", "--bundle", str(two_tier_bundle), "--data", str(FIXTURE / "data"), "--off"]) == 0
    assert "no blend" in capsys.readouterr().out
    entry = next(t for t in json.loads((two_tier_bundle / "manifest.json").read_text())["tiers"] if t["name"] == "transformer")
    assert "blend" not in entry


def test_builder_blend_refuses_what_cannot_blend(two_tier_bundle: Path, capsys):
    assert main(["blend", "--bundle", str(two_tier_bundle), "--data", str(FIXTURE / "data"), "--partner", "nope"]) == 2
    assert "no tier named 'nope'" in capsys.readouterr().err
    assert main(["blend", "--bundle", str(two_tier_bundle), "--data", str(FIXTURE / "data"), "--partner", "transformer"]) == 2
    assert "cannot blend with itself" in capsys.readouterr().err
