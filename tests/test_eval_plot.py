"""``builder eval --plot``: PNG reliability diagrams and confidence histograms per evaluated tier."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from builder.data.datasets import read_jsonl, read_splits
from builder.evaluate.plots import confidence_histogram, oos_histogram, reliability_diagram
from builder.evaluate.tiers import evaluate
from builder.train.metrics import calibration_bins, expected_calibration_error

from conftest import ROOT

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    from matplotlib.image import imread

    data = path.read_bytes()
    return data.startswith(PNG) and imread(path).shape[0] > 100


def test_calibration_bins_agree_with_ece():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(400, 5)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    targets = rng.integers(0, 5, 400)
    bins = calibration_bins(probs.max(axis=1), probs.argmax(axis=1) == targets)
    assert bins.counts.sum() == 400 and len(bins.counts) == 15
    assert bins.ece == pytest.approx(expected_calibration_error(probs, targets))


def test_figures_are_pngs_even_for_empty_or_one_sided_data(tmp_path):
    conf = np.array([0.2, 0.55, 0.9, 0.99])
    right = np.array([False, True, True, True])
    for path in (
        reliability_diagram(conf, right, tmp_path / "r.png", "t"),
        confidence_histogram(conf, right, tmp_path / "c.png", "t"),
        oos_histogram(conf, np.array([True, False, False, False]), 0.5, tmp_path / "o.png", "t"),
        reliability_diagram(np.array([]), np.array([], dtype=bool), tmp_path / "empty.png", "t"),
        confidence_histogram(np.array([0.9]), np.array([True]), tmp_path / "all-right.png", "t"),
    ):
        assert _is_png(path)
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, no leftovers


def test_evaluate_writes_two_plots_per_tier_and_the_cascade(small_bundle, small_data, tmp_path):
    rows = read_jsonl(small_data / "test.jsonl")
    reports = evaluate(small_bundle, rows, "all", plot_dir=tmp_path / "plots", environ={})
    assert [r["tier"] for r in reports] == ["bow", "cascade"]
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["bow-confidence.png", "bow-reliability.png", "cascade-confidence.png", "cascade-reliability.png"]
    assert all(_is_png(tmp_path / "plots" / name) for name in names)
    assert reports[0]["plots"] == [str(tmp_path / "plots" / "bow-reliability.png"), str(tmp_path / "plots" / "bow-confidence.png")]


def test_cli_eval_plot_and_holdout_plot(small_bundle, small_data, tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "builder", "eval", "--bundle", str(small_bundle), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)

    done = run("--data", str(small_data), "--tier", "bow,cascade", "--plot", str(tmp_path / "a"), "--json")
    assert done.returncode == 0, done.stderr
    reports = json.loads(done.stdout.strip().splitlines()[-1])["reports"]
    assert [r["tier"] for r in reports] == ["bow", "cascade"] and reports[0]["n"] == len(read_splits(small_data)["test"])  # --data DIR reads test.jsonl
    assert len(list((tmp_path / "a").glob("*.png"))) == 4

    done = run("--data", str(small_data), "--tier", "bow", "--holdout-intents", "2", "--plot", str(tmp_path / "b"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["mode"] == "holdout" and len(report["held_out"]) == 2 and "OOS recall" in done.stdout
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["bow-holdout-oos.png", "bow-holdout-reliability.png"]
    assert all(_is_png(tmp_path / "b" / name) for name in ("bow-holdout-oos.png", "bow-holdout-reliability.png"))

    done = run("--data", str(small_data / "test.jsonl"), "--holdout-intents", "2")
    assert done.returncode == 2 and "not a folder" in done.stderr and "Traceback" not in done.stderr
