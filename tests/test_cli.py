"""The command line as a user runs it: exit codes, one-line errors, JSON outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "builder", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        input=stdin,
        timeout=300,
    )


def test_help_lists_the_subcommands():
    out = run("--help").stdout
    for command in ("generate", "import", "train-bow", "eval", "predict", "build", "status", "demo"):
        assert command in out


def test_generate_train_eval_predict_end_to_end(tmp_path):
    data, bundle = tmp_path / "data", tmp_path / "bundle"
    done = run("generate", "--out", str(data), "--size", "1100", "--seed", "5")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in data.iterdir()) == ["generation.json", "slots.json", "test.jsonl", "train.jsonl", "val.jsonl"]
    done = run("train-bow", "--data", str(data), "--out", str(bundle), "--epochs", "3", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "epoch  3/3" in done.stderr and "test: accuracy" in done.stderr

    done = run("eval", "--bundle", str(bundle), "--data", str(data / "test.jsonl"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    test_rows = len((data / "test.jsonl").read_text(encoding="utf-8").splitlines())
    assert 100 <= test_rows <= 120 and report["n"] == test_rows and report["accuracy"] > 0.8
    assert {"macro_f1", "ece", "ece_uncalibrated", "per_intent", "confusions"} <= set(report)
    assert "precision" in done.stdout and "ECE (15 bins)" in done.stdout

    done = run("eval", "--bundle", str(bundle), "--data", str(data / "test.jsonl"), "--tier", "cascade", "--json")
    cascade = json.loads(done.stdout.strip().splitlines()[-1])
    assert cascade["tier"] == "cascade" and 0 < cascade["coverage"] <= 1

    done = run("predict", "--bundle", str(bundle), "--json", "how many shares of TSLA do I have")
    result = json.loads(done.stdout)
    assert result["intent"] == "positions" and result["slots"] == {"SYMBOL": ["TSLA"]}
    assert result["tier"] == "bow" and result["tiers"][0]["tier"] == "bow"

    done = run("predict", "--bundle", str(bundle), "-", stdin="cash balance\nprice of nvda\n")
    assert done.stdout.count("intent ") == 2 and "quotes" in done.stdout

    done = run("status", "--bundle", str(bundle))
    assert done.returncode == 0 and json.loads(done.stdout)["ready"] is True


def test_import_command_writes_splits(tmp_path):
    src = tmp_path / "logs.jsonl"
    src.write_text("".join(json.dumps({"raw_input": f"text {i}", "intent": "ab"[i % 2], "execution_success": i % 5 != 0}) + "\n" for i in range(60)))
    done = run("import", "--from", str(src), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "skipped 12 failed executions" in done.stderr
    assert sum(1 for name in ("train", "val", "test") for _ in open(tmp_path / "out" / f"{name}.jsonl")) == 48


@pytest.mark.parametrize(
    "args, message",
    [
        (("generate", "--templates", "nope.json", "--out", "/tmp/x"), "nope.json: templates file not found"),
        (("train-bow", "--data", "/nonexistent", "--out", "/tmp/x"), "/nonexistent: not a folder"),
        (("eval", "--bundle", "/nonexistent", "--data", "x.jsonl"), "x.jsonl: file not found"),
        (("predict", "--bundle", "/nonexistent", "hi"), "no manifest"),
    ],
)
def test_errors_are_one_line_without_traceback(args, message):
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ")


def test_bad_option_values_are_rejected_by_the_parser():
    done = run("predict", "--threshold", "2", "hi")
    assert done.returncode == 2 and "expected a number between 0 and 1" in done.stderr
    for option, value, message in (("--pseudo-oos", "-1", "expected a number >= 0"), ("--pseudo-oos", "nan", "expected a number >= 0"),
                                    ("--layer-decay", "1.5", "expected a number between 0 and 1")):
        done = run("train", "--data", "x", "--out", "y", option, value)
        assert done.returncode == 2 and message in done.stderr, (option, value, done.stderr)


def test_predict_refuses_huge_input_cleanly(small_bundle):
    done = run("predict", "--bundle", str(small_bundle), "x" * 10_000)
    assert done.returncode == 2 and "the limit is 4,096" in done.stderr and "Traceback" not in done.stderr


def test_status_of_a_broken_bundle_exits_non_zero(small_bundle, tmp_path):
    import shutil

    broken = tmp_path / "b"
    shutil.copytree(small_bundle, broken)
    (broken / "bow.json").write_text("{}")
    done = run("status", "--bundle", str(broken))
    status = json.loads(done.stdout)
    assert done.returncode == 1 and status["ready"] is False and status["problems"]


def test_build_if_missing_builds_then_skips(tmp_path):
    env = {"INTENT_DATASET_SIZE": "1100"}
    out = tmp_path / "bundle"
    first = run("build", "--out", str(out), "--data", str(tmp_path / "data"), "--tiers", "bow", "--if-missing", "--quiet", env=env)
    assert first.returncode == 0, first.stderr
    assert "[2/2] training the bag-of-words tier" in first.stderr and (out / "manifest.json").exists()
    second = run("build", "--out", str(out), "--tiers", "bow", "--if-missing", env=env)
    assert second.returncode == 0 and "nothing to build" in second.stderr
    bad = run("build", "--out", str(out), "--tiers", "bow,gpt")
    assert bad.returncode == 2 and "choose from bow, transformer" in bad.stderr


def test_build_both_tiers_from_a_local_base(tmp_path):
    from tiny_bert import make_tiny_base

    base = make_tiny_base(tmp_path / "base")
    out = tmp_path / "bundle"
    small = ("build", "--out", str(out), "--data", str(tmp_path / "data"), "--base", str(base), "--size", "small", "--quiet")
    deeper = run(*small, env={"INTENT_DATASET_SIZE": "660"})
    assert deeper.returncode == 2 and "--layers 3: the base" in deeper.stderr and "has 2 encoder layers" in deeper.stderr
    # the small recipe otherwise (7-bit weights, 8,000 wordpieces), on both of the tiny base's layers
    done = run(*small, "--layers", "2", env={"INTENT_DATASET_SIZE": "660"})
    assert done.returncode == 0, done.stderr
    model = json.loads((out / "manifest.json").read_text())["tiers"][1]["variants"]["model"]
    assert model["int8_scheme"] == "u8s7" and json.loads((out / "config.json").read_text())["vocab_size"] == 8000
    assert "[3/3] fine-tuning the transformer tier" in done.stderr
    status = json.loads(run("status", "--bundle", str(out)).stdout)
    assert [(t["name"], t["available"]) for t in status["tiers"]] == [("bow", True), ("transformer", True)]
    result = json.loads(run("predict", "--bundle", str(out), "--json", "--handoff-threshold", "1", "--force", "price of AAPL").stdout)
    assert [r["tier"] for r in result["tiers"]] == ["bow", "transformer"]


def test_size_recipes_fill_what_the_command_line_leaves_unset():
    """`build` ships the compact recipe by default (every layer, 4-bit weights, 16,000 wordpieces);
    `train` keeps the base as it is; explicit options win over a recipe."""
    from builder.arguments import parse_args

    build = parse_args(["build"])
    assert (build.size_recipe, build.layers, build.int8_scheme, build.vocab_size) == ("compact", None, "u8s4", 16000)
    train = parse_args(["train", "--data", "d", "--out", "o"])
    assert (train.size_recipe, train.layers, train.int8_scheme, train.vocab_size) == ("base", None, "u8s7", None)
    tiny = parse_args(["build", "--size", "tiny", "--vocab-size", "6000"])
    assert (tiny.layers, tiny.int8_scheme, tiny.vocab_size) == (3, "u8s4", 6000)
