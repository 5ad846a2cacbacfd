"""Out-of-scope handling: metrics, an explicit OOS class end to end, and the held-out intents protocol."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import replace

import numpy as np
import pytest

from builder.data.datasets import Example, read_splits, write_splits
from builder.data.oos_labels import record_oos_labels
from builder.errors import BuildError
from builder.evaluate.holdout import format_holdout, pick_holdout
from builder.evaluate.oos import auroc, oos_metrics, threshold_for_loss
from builder.evaluate.tiers import evaluate
from builder.pipeline.holdout import bow_recipe, run_holdout
from builder.train.bow import BowOptions
from runtime_py import Router


def _pairwise_auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    pos, neg = scores[positive], scores[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auroc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(5, 80))
        scores = rng.integers(0, 6, n).astype(float)  # many ties
        positive = rng.random(n) < 0.4
        positive[:2] = [True, False]
        assert auroc(scores, positive) == pytest.approx(_pairwise_auroc(scores, positive))
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([False, False, True, True])) == 1.0
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([True, True, False, False])) == 0.0
    with pytest.raises(BuildError, match="both positive and negative"):
        auroc(np.array([0.5, 0.6]), np.array([True, True]))


def test_threshold_for_loss_rejects_at_most_the_budget_of_right_answers():
    confidence = np.array([0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 0.97, 0.99])
    correct = np.array([False, True, True, False, True, True, True, True, True, True])
    assert threshold_for_loss(confidence, correct, 0.0) == 0.40  # no right answer may be lost
    assert threshold_for_loss(confidence, correct, 0.1) == 0.50  # one of ten rows: the 0.40 one
    assert threshold_for_loss(confidence, correct, 0.25) == 0.70  # two: 0.40 and 0.50 (0.60 was wrong anyway)
    assert threshold_for_loss(confidence, correct, 1.0) == 1.0
    rng = np.random.default_rng(1)
    conf, right = rng.random(500), rng.random(500) < 0.8
    for budget in (0.005, 0.01, 0.05):
        t = threshold_for_loss(conf, right, budget)
        assert (right & (conf < t)).mean() <= budget
        assert (right & (conf <= t)).mean() > budget  # and it is the highest such threshold


def test_oos_metrics_on_a_small_case():
    confidence = np.array([0.9, 0.8, 0.4, 0.95, 0.3, 0.7, 0.2])
    correct = np.array([True, True, True, False, False, False, False])
    is_oos = np.array([False, False, False, False, True, True, True])
    m = oos_metrics(confidence, correct, is_oos, threshold=0.5)
    assert m["in_scope_accuracy"] == pytest.approx(3 / 4)
    assert m["in_scope_accuracy_with_rejection"] == pytest.approx(2 / 4)  # the 0.4 right answer is rejected
    assert m["in_scope_accuracy_loss"] == pytest.approx(1 / 4)
    assert m["oos_recall"] == pytest.approx(2 / 3)  # 0.3 and 0.2 rejected, 0.7 accepted
    assert m["oos_precision"] == pytest.approx(2 / 3)  # rejected: 0.4 (in scope), 0.3, 0.2
    assert m["accuracy_with_oos_class"] == pytest.approx((2 + 2) / 7)


def test_held_out_breakdown_says_which_known_intent_absorbs_each_held_out_one():
    from builder.evaluate.oos import RoutedScores, held_out_breakdown

    intents = ["a", "x", "x", "x", "y", "b"]
    scored = RoutedScores(np.array([0.9, 0.95, 0.4, 0.8, 0.3, 0.7]), np.array([True, False, False, False, False, True]),
                          ["a", "card_delivery", "card_delivery", "pin", "a", "b"])
    per = held_out_breakdown(intents, ["x", "y", "z"], scored, threshold=0.5)
    assert [p["intent"] for p in per] == ["x", "y"]  # z has no test rows
    x, y = per
    assert (x["n"], x["recall"], x["median_confidence"]) == (3, pytest.approx(1 / 3), 0.8)
    assert x["answered_as"] == [{"intent": "card_delivery", "count": 2}, {"intent": "pin", "count": 1}]
    assert (y["n"], y["recall"], y["answered_as"]) == (1, 1.0, [{"intent": "a", "count": 1}])


def test_pick_holdout_is_reproducible_and_bounded():
    labels = [f"intent_{i:02d}" for i in range(20)] + ["oos"]
    first = pick_holdout(labels, 5, seed=3)
    assert first == pick_holdout(list(reversed(labels)), 5, seed=3) and len(set(first)) == 5
    assert "oos" not in first and first != pick_holdout(labels, 5, seed=4)
    with pytest.raises(BuildError, match=r"--holdout-intents 19: choose 1\.\.18"):
        pick_holdout(labels, 19, seed=3)


def test_record_oos_labels_sets_and_clears_the_routing_entry():
    manifest = {"routing": {"margin": 0.1}}
    assert record_oos_labels(manifest, ["a", "oos", "b"]) == ["oos"]
    assert manifest["routing"] == {"margin": 0.1, "oos_labels": ["oos"]}
    assert record_oos_labels(manifest, ["a", "none_of_these"], ["none_of_these", "other"]) == ["none_of_these"]
    assert record_oos_labels(manifest, ["a", "b"]) == [] and "oos_labels" not in manifest["routing"]


OFF_TOPIC = [
    " ".join(words)
    for words in itertools.product(
        ["what's the", "tell me the", "check the", "any news on the", "remind me about the"],
        ["weather", "football score", "pizza place", "movie times", "flight status", "traffic", "recipe"],
        ["tonight", "in paris", "near me", "tomorrow"],
    )
]


@pytest.fixture(scope="module")
def data_with_oos(tmp_path_factory, small_data):
    splits = read_splits(small_data)
    rng = random.Random(0)
    rows = [Example(text, "oos") for text in OFF_TOPIC]
    rng.shuffle(rows)
    cut = int(len(rows) * 0.8)
    splits["train"] += rows[:cut]
    splits["val"] += rows[cut : cut + 7]
    splits["test"] += rows[cut + 7 :]
    out = tmp_path_factory.mktemp("data") / "with-oos"
    write_splits(out, splits, {"slots.json": json.loads((small_data / "slots.json").read_text())})
    return out


def test_an_oos_class_is_trained_listed_in_the_manifest_and_routed_to_clarify(data_with_oos, tmp_path):
    from builder.pipeline.bow_tier import train_bow_into_bundle

    bundle = tmp_path / "bundle"
    train_bow_into_bundle(data_with_oos, bundle, BowOptions(epochs=4), progress=False)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["routing"]["oos_labels"] == ["oos"] and "oos" in manifest["labels"]
    router = Router.from_bundle(bundle, strict=True, environ={})
    result = router.classify("what's the weather near me tomorrow")
    assert (result.intent, result.reason, result.tier) == ("clarify", "out_of_scope", "bow")
    assert router.classify("how many shares of TSLA do I own").intent == "positions"
    # The cascade expects "clarify" for rows labelled oos.
    rows = [Example("what's the traffic tonight", "oos"), Example("price of AAPL", "quotes")]
    (report,) = evaluate(bundle, rows, "cascade", environ={})
    assert report["accuracy"] == 1.0 and report["coverage"] == 0.5

    # A different name for the OOS class is configurable; without one, nothing is listed.
    renamed = tmp_path / "renamed"
    train_bow_into_bundle(data_with_oos, renamed, BowOptions(epochs=1, oos_labels=("none_of_these",)), progress=False)
    assert "oos_labels" not in json.loads((renamed / "manifest.json").read_text())["routing"]


def test_bow_recipe_reads_back_the_options_a_bundle_was_trained_with(small_bundle, tmp_path):
    options, source = bow_recipe(small_bundle)
    assert options == BowOptions(epochs=3) and source.endswith("bow.json")
    options, source = bow_recipe(tmp_path)  # not a bundle: the defaults
    assert options == BowOptions() and source.startswith("defaults")


def test_holdout_protocol_retrains_without_the_intents_and_scores_them_as_oos(small_data, small_bundle, tmp_path):
    keep = tmp_path / "holdout-bundle"
    result = run_holdout(small_bundle, small_data, "bow", n=2, seed=5, max_inscope_loss=0.02, keep=keep, log=lambda _: None)
    report = result.report
    held = report["held_out"]
    assert held == pick_holdout(json.loads((small_bundle / "manifest.json").read_text())["labels"], 2, 5)
    manifest = json.loads((keep / "manifest.json").read_text())
    trained = json.loads((small_bundle / "manifest.json").read_text())["labels"]
    assert not set(held) & set(manifest["labels"]) and len(manifest["labels"]) == len(trained) - 2
    test_rows = read_splits(small_data)["test"]
    assert report["sizes"]["test_oos"] == sum(r.intent in held for r in test_rows) == int(result.test_is_oos.sum())
    assert report["recipe"]["epochs"] == 3  # the bundle's recipe, not the defaults
    assert 0.5 < report["auroc"] <= 1 and 0 <= report["oos_recall"] <= 1
    assert report["in_scope_accuracy_loss"] == pytest.approx(report["in_scope_accuracy"] - report["in_scope_accuracy_with_rejection"])
    assert report["at_router_threshold"]["threshold"] == 0.6
    per = report["per_held_out_intent"]
    assert [p["intent"] for p in per] == [h for h in held if any(r.intent == h for r in test_rows)]
    assert sum(p["n"] for p in per) == report["sizes"]["test_oos"]
    # the per-intent recalls average (weighted by rows) to the overall recall at the same threshold
    assert sum(p["recall"] * p["n"] for p in per) / sum(p["n"] for p in per) == pytest.approx(report["oos_recall"])
    assert all(a["intent"] in manifest["labels"] and a["intent"] not in held for p in per for a in p["answered_as"])
    assert "per held-out intent" in format_holdout(report)
    with pytest.raises(BuildError, match="--tier bow or --tier transformer"):
        run_holdout(small_bundle, small_data, "cascade", n=2)


def test_recipe_overrides_are_parsed_and_checked():
    from builder.pipeline.holdout import _override, parse_overrides

    overrides = parse_overrides(["epochs=6", "learning_rate=0.05", "char_ngrams=[2, 5]", "tf=log"])
    assert overrides == {"epochs": 6, "learning_rate": 0.05, "char_ngrams": [2, 5], "tf": "log"}
    options = _override(BowOptions(), overrides)
    assert (options.epochs, options.char_ngrams, options.tf) == (6, (2, 5), "log")
    with pytest.raises(BuildError, match="expected KEY=VALUE"):
        parse_overrides(["epochs"])
    with pytest.raises(BuildError, match=r"unknown setting\(s\) \['epoch'\]"):
        _override(BowOptions(), {"epoch": 3})


def test_pseudo_oos_loss_mixes_only_utterances_of_different_intents():
    import torch

    from builder.train.fine_tune import _pseudo_oos_loss

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)

        def classify(self, pooled: torch.Tensor) -> torch.Tensor:
            return self.linear(pooled)

    head, generator = Head(), torch.Generator().manual_seed(0)
    pooled = torch.randn(8, 4, requires_grad=True)
    loss = _pseudo_oos_loss(head, pooled, torch.tensor([0, 1] * 4), 2, 0.5, generator)
    assert loss.item() > 0
    loss.backward()
    assert pooled.grad is not None and pooled.grad.abs().sum() > 0  # the encoder learns from the mixes too
    same = _pseudo_oos_loss(head, pooled, torch.zeros(8, dtype=torch.long), 2, 0.5, generator)
    assert same.item() == 0.0  # one intent only: nothing to mix


def test_holdout_with_pseudo_oos_adds_an_oos_class_and_rejects_its_answers(small_data, small_bundle, tmp_path):
    from tiny_bert import make_tiny_base

    base = make_tiny_base(tmp_path / "base")
    keep = tmp_path / "holdout-transformer"
    # the finance data has an "oos" intent: name another label, which the synthetic outliers add
    overrides = {"base": str(base), "epochs": 1, "max_steps": 12, "batch_size": 16, "pseudo_oos": 0.5, "oos_labels": ["elsewhere"]}
    result = run_holdout(small_bundle, small_data, "transformer", n=2, seed=5, keep=keep, overrides=overrides, log=lambda _: None)
    manifest = json.loads((keep / "manifest.json").read_text())
    tier = next(t for t in manifest["tiers"] if t["kind"] == "transformer")
    assert "elsewhere" in manifest["labels"] and manifest["routing"]["oos_labels"] == ["elsewhere"]
    assert len(manifest["labels"]) == len(json.loads((small_bundle / "manifest.json").read_text())["labels"]) - 2 + 1
    assert tier["training"]["pseudo_oos"] == 0.5
    report = result.report
    assert report["recipe"]["training"]["pseudo_oos"] == 0.5 and report["threshold"] >= 0
    # confidences are in-scope probabilities, or -1 where the top label is the oos class
    conf = result.test_confidence
    assert np.all((conf == -1.0) | ((conf > 0) & (conf <= 1)))
    assert 0 <= report["oos_recall"] <= 1


def test_a_tier_with_other_intents_is_refused_before_training(small_data, small_bundle, tmp_path, monkeypatch):
    import shutil

    import builder.pipeline.transformer_tier as build
    from builder.pipeline.transformer_tier import TransformerBuildOptions, train_transformer_into_bundle
    from builder.train.fine_tune import TransformerOptions

    bundle = tmp_path / "bundle"
    shutil.copytree(small_bundle, bundle)  # a BoW tier without a label named "elsewhere"
    monkeypatch.setattr(build, "train_transformer", lambda *a, **k: pytest.fail("trained before checking the intents"))
    options = TransformerBuildOptions(training=TransformerOptions(pseudo_oos=0.5, oos_labels=("elsewhere",)))
    with pytest.raises(BuildError, match=r"different intents .*new: \['elsewhere'\]"):
        train_transformer_into_bundle(small_data, bundle, options, log=lambda _: None, progress=False)
