"""The cascade fitted on validation data (builder/train/cascade.py): the replay of the router is
exact, the fit picks the lowest hand-off that keeps up with the last tier (in accuracy and in the
accuracy of its answers), out-of-scope recall never drops, the bundle records it, the runtimes read it and settings still override it."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from builder.bundle.writer import open_bundle
from builder.data.datasets import Example, read_jsonl, read_splits
from builder.evaluate.tiers import evaluate
from builder.train.bow import BowOptions, train_bow
from builder.train.cascade import HANDOFF_GRID, Scores, fit, fit_manifest, figures, route, score
from runtime_py import Router
from runtime_py.tiers import Tier

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["cash_balance", "oos", "positions", "quotes"]
NO_ENV: dict[str, str] = {}


class HashedTier(Tier):
    """Probabilities drawn from a hash of the text: sharp for some texts, flat for others, ties
    and near-ties included, so that every branch of the router is taken; in its own label order."""

    kind = "hashed"

    def __init__(self, name: str, salt: str, labels: Sequence[str] = LABELS) -> None:
        self.name, self.salt, self.labels, self.temperature = name, salt, list(labels), 1.0

    def logits(self, text: str) -> list[float]:
        digest = hashlib.sha256(f"{self.salt}:{text}".encode()).digest()
        sharpness = digest[0] / 32
        values = [sharpness * b / 255 for b in digest[1 : 1 + len(self.labels)]]
        if digest[6] % 7 == 0:
            values[1] = values[0]  # a tie for the top: the router keeps the first label
        return values

    def probabilities(self, text: str) -> list[float]:
        z = self.logits(text)
        top = max(z)
        e = [math.exp(v - top) for v in z]
        return [v / sum(e) for v in e]


def _rows(n: int) -> list[Example]:
    return [Example(f"text {i}", LABELS[i % len(LABELS)]) for i in range(n)]


@pytest.mark.parametrize("handoff,threshold,margin", [(0.75, 0.6, 0.1), (0.3, 0.3, 0.0), (0.5, 0.9, 0.25), (0.99, 0.5, 0.1)])
def test_the_replay_answers_as_the_router(handoff, threshold, margin):
    rows = _rows(400)
    router = Router([HashedTier("a", "1", LABELS[::-1]), HashedTier("b", "2")], handoff_threshold=handoff, threshold=threshold, margin=margin,
                    oos_labels=["oos"], environ=NO_ENV)
    outcome = route(score(router, rows), [handoff, threshold])
    for i, row in enumerate(rows):
        result = router.classify(row.text)
        assert outcome.by[i] == ({"a": 0, "b": 1}[result.tier] if result.tier else -1)
        expected = -1 if result.tier is None or result.reason == "out_of_scope" else LABELS.index(result.intent)
        assert outcome.answer[i] == expected, (row.text, result.reason)


def _scores(probs: Sequence[np.ndarray], targets: Sequence[int], oos_rows: Sequence[bool] | None = None) -> Scores:
    n = len(targets)
    return Scores(
        labels=list(LABELS), tiers=["bow", "transformer"][-len(probs):], probs=[np.asarray(p, dtype=float) for p in probs],
        columns=[np.arange(len(LABELS))] * len(probs),
        seconds=np.array([[1e-4] * n, [1e-2] * n][-len(probs):]), targets=np.asarray(targets),
        oos_rows=np.asarray(oos_rows if oos_rows is not None else [False] * n), oos_labels=np.array([l == "oos" for l in LABELS]), margin=0.1,
    )


def _one_hot(label: int, confidence: float) -> list[float]:
    rest = (1 - confidence) / (len(LABELS) - 1)
    return [confidence if j == label else rest for j in range(len(LABELS))]


def test_the_fit_picks_the_lowest_handoff_that_keeps_up_with_the_last_tier():
    # The transformer is always right. The BoW is right above 0.9 and wrong on 10 rows at 0.85.
    targets = [0] * 90 + [2] * 10
    bow = [_one_hot(0, 0.95)] * 90 + [_one_hot(3, 0.85)] * 10
    transformer = [_one_hot(t, 0.9) for t in targets]
    scores = _scores([bow, transformer], targets)
    result = fit(scores, threshold=0.6, tolerance=0.0)
    assert result.handoffs == {"bow": 0.86} and result.met == {"bow": True}
    assert result.cascade.accuracy == result.last_alone.accuracy == 1.0
    assert result.cascade.answered_by == {"bow": 0.9, "transformer": 0.1}
    assert result.cascade.mean_ms == pytest.approx(0.1 + 0.1 * 10)
    # Losing 10 points is allowed by a tolerance of 10 points: the grid's lowest hand-off.
    assert fit(scores, threshold=0.6, tolerance=0.1).handoffs == {"bow": HANDOFF_GRID[0]}


def test_out_of_scope_recall_may_not_drop():
    # The BoW answers out-of-scope rows with an intent at 0.97; the transformer says "oos".
    targets = [0] * 50 + [-1] * 10
    oos = [False] * 50 + [True] * 10
    bow = [_one_hot(0, 0.99)] * 50 + [_one_hot(2, 0.97)] * 10
    transformer = [_one_hot(0, 0.9)] * 50 + [_one_hot(1, 0.9)] * 10
    result = fit(_scores([bow, transformer], targets, oos), threshold=0.6, tolerance=0.5)
    assert result.handoffs == {"bow": 0.98}
    assert result.cascade.oos_recall == result.last_alone.oos_recall == 1.0


def test_answering_what_the_last_tier_would_clarify_must_keep_its_answers_as_accurate():
    # The transformer is right on 80 rows and unsure (clarify) on 20. On those 20 the BoW answers
    # at 0.7, right on half: the cascade's in-scope accuracy rises from 0.8 to 0.9, but its answers
    # are right 90% of the time instead of 100%, so the BoW may answer only what it is sure of (0.95).
    targets = [0] * 80 + [1] * 20
    bow = [_one_hot(0, 0.96)] * 80 + [_one_hot(1, 0.7)] * 10 + [_one_hot(2, 0.7)] * 10
    transformer = [_one_hot(0, 0.9)] * 80 + [_one_hot(1, 0.5)] * 20
    result = fit(_scores([bow, transformer], targets), threshold=0.6, tolerance=0.002)
    assert result.handoffs == {"bow": 0.71}
    assert result.last_alone.accuracy == result.cascade.accuracy == 0.8
    assert result.cascade.answer_precision == result.last_alone.answer_precision == 1.0
    assert result.cascade.answered_by == {"bow": 0.8, "transformer": 0.0}


def test_no_handoff_keeps_up_leaves_the_tier_at_one_and_says_so():
    targets = [0] * 10
    bow = [_one_hot(2, 1.0)] * 10  # certain and wrong
    result = fit(_scores([bow, [_one_hot(0, 0.9)] * 10], targets), threshold=0.6)
    assert result.handoffs == {"bow": 1.0} and result.met == {"bow": False}


def test_the_clarify_threshold_is_fitted_where_the_rows_have_out_of_scope_text():
    # The last tier alone: right at 0.9 on in-scope rows, an intent at 0.7 for out-of-scope rows.
    targets = [0] * 40 + [-1] * 10
    oos = [False] * 40 + [True] * 10
    last = [_one_hot(0, 0.9)] * 40 + [_one_hot(3, 0.7)] * 10
    scores = _scores([last], targets, oos)
    result = fit(scores, threshold=0.6, target_precision=0.97)
    assert result.threshold_fitted and result.threshold == 0.71
    assert result.last_alone.oos_recall == 1.0 and result.last_alone.answer_precision == 1.0
    assert not fit(scores, threshold=0.6).threshold_fitted  # no target: the threshold is kept


@pytest.fixture(scope="module")
def two_tier_bundle(small_bundle, small_data, tmp_path_factory) -> Path:
    """small_bundle plus a second, word-only BoW tier ("words"), trained as the last tier with a
    target precision, and the cascade fitted on validation data as train does."""
    out = tmp_path_factory.mktemp("cascade") / "bundle"
    shutil.copytree(small_bundle, out)
    result = train_bow(read_splits(small_data), BowOptions(epochs=2, max_vocab=500), progress=False)
    with open_bundle(out) as draft:
        draft.write_json("words.json", result.model)
        draft.set_tier("words", "bow", {"model": "words.json"}, result.labels, calibration={"target_precision": 0.97})
        fit_manifest(draft.root, draft.manifest, read_splits(small_data)["val"], log=lambda _: None)
    return out


def test_the_bundle_records_the_fit_and_the_runtime_reads_it(two_tier_bundle):
    manifest = json.loads((two_tier_bundle / "manifest.json").read_text())
    bow = next(t for t in manifest["tiers"] if t["name"] == "bow")
    record = bow["calibration"]["handoff"]
    assert record["fitted_on"] == "val" and record["tolerance"] == 0.002 and bow["handoff_threshold"] in HANDOFF_GRID
    for figure in ("accuracy", "answer_precision"):
        assert record["cascade"][figure] >= record["last_tier_alone"][figure] - 0.002
    assert Router.from_bundle(two_tier_bundle, environ=NO_ENV).thresholds["bow"][1] == bow["handoff_threshold"]
    # Environment variables and arguments still win, as documented.
    assert Router.from_bundle(two_tier_bundle, environ={"INTENT_HANDOFF_THRESHOLD": "0.42"}).thresholds["bow"][1] == 0.42
    assert Router.from_bundle(two_tier_bundle, environ=NO_ENV, handoff_threshold=0.5).thresholds["bow"][1] == 0.5


def test_eval_reports_the_curve_and_it_agrees_with_the_router(two_tier_bundle, small_data, tmp_path):
    rows = read_jsonl(small_data / "test.jsonl")
    (report,) = evaluate(two_tier_bundle, rows, "cascade", plot_dir=tmp_path, environ=NO_ENV)
    handoff = report["handoffs"][0]
    point = next(p for p in report["curve"] if p["handoff"] == handoff)
    assert point["accuracy"] == pytest.approx(report["in_scope_accuracy"])
    n = report["n"]
    assert point["answered_by"]["bow"] == pytest.approx(report["answered_by"].get("bow", 0) / n)
    shares = [p["answered_by"]["bow"] for p in report["curve"]]
    assert shares == sorted(shares, reverse=True)  # a higher hand-off never answers more early
    assert (tmp_path / "cascade-handoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cascade_command_refits_on_other_data(two_tier_bundle, small_data, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(two_tier_bundle, bundle)
    (tmp_path / "val.jsonl").write_text((small_data / "test.jsonl").read_text())
    done = subprocess.run([sys.executable, "-m", "builder", "cascade", "--bundle", str(bundle), "--data", str(tmp_path / "val.jsonl"),
                           "--handoff-tolerance", "0.5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "bow answers alone at >= 0.3" in done.stdout  # a 50-point tolerance: the lowest hand-off
    bow = next(t for t in json.loads((bundle / "manifest.json").read_text())["tiers"] if t["name"] == "bow")
    assert bow["handoff_threshold"] == 0.3 and bow["calibration"]["handoff"]["tolerance"] == 0.5
    bad = subprocess.run([sys.executable, "-m", "builder", "cascade", "--bundle", str(bundle), "--data", str(tmp_path / "none.jsonl")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "file not found" in bad.stderr and "Traceback" not in bad.stderr


def test_figures_count_clarify_as_wrong_in_scope_and_right_out_of_scope():
    scores = _scores([[_one_hot(0, 0.4), _one_hot(0, 0.9), _one_hot(2, 0.4)]], [0, 0, -1], [False, False, True])
    result = figures(scores, route(scores, [0.6]))
    assert (result.accuracy, result.oos_recall, result.clarify) == (0.5, 1.0, pytest.approx(2 / 3))
