"""Synthetic data: determinism, sizes, splits, variants, environment variables."""

from __future__ import annotations

import json
import random

import pytest

from builder.data.datasets import read_splits, write_splits
from builder.data.generate import GenerateOptions, expand, generate
from builder.data.templates import parse_templates
from pathlib import Path


def _texts(splits):
    return {name: [(r.text, r.intent) for r in rows] for name, rows in splits.items()}


def test_same_seed_same_rows_and_files(finance_templates, tmp_path):
    a, _ = generate(finance_templates, GenerateOptions(size=3000, seed=11))
    b, _ = generate(finance_templates, GenerateOptions(size=3000, seed=11))
    assert _texts(a) == _texts(b)
    write_splits(tmp_path / "a", a)
    write_splits(tmp_path / "b", b)
    for name in ("train", "val", "test"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (tmp_path / "b" / f"{name}.jsonl").read_bytes()
    c, _ = generate(finance_templates, GenerateOptions(size=3000, seed=12))
    assert _texts(c) != _texts(a)


def test_sizes_balance_and_80_10_10_split(finance_templates):
    splits, report = generate(finance_templates, GenerateOptions(size=6000, seed=1))
    sizes = {k: len(v) for k, v in splits.items()}
    assert len(finance_templates.intents) == 12 and sum(sizes.values()) == 6000 and report.short == {}
    assert sizes["train"] == pytest.approx(4800, abs=12) and sizes["val"] == pytest.approx(600, abs=12)
    assert set(report.per_intent.values()) == {500}
    for rows in splits.values():
        assert {r.intent for r in rows} == set(finance_templates.intents)


def test_no_utterance_is_in_two_splits_or_two_intents(finance_templates):
    splits, _ = generate(finance_templates, GenerateOptions(size=8000, seed=2))
    keys = [r.text.lower() for rows in splits.values() for r in rows]
    assert len(keys) == len(set(keys))


def test_variants_typos_affixes_and_every_template_is_used(finance_templates):
    splits, _ = generate(finance_templates, GenerateOptions(size=25_000, seed=7))
    texts = [r.text for rows in splits.values() for r in rows]
    lowered = [t.lower() for t in texts]
    assert any("perfomance" in t or "performnce" in t for t in lowered)
    assert any(t.startswith("quick question ") for t in lowered)
    assert any(t.endswith(("in my roth ira", "in my ira", "in my brokerage")) for t in lowered)
    assert any(t.endswith(" perf") and t.split()[0].isupper() for t in texts)  # "AAPL perf"
    assert any(t == t.lower() and "?" not in t for t in texts) and any("?" in t for t in texts)


def test_expand_caps_combinations_without_repeats():
    slots = {"A": [str(i) for i in range(30)], "B": [str(i) for i in range(30)]}
    out = expand("{A} and {B}", slots, random.Random(0), cap=50)
    assert len(out) == len(set(out)) == 50
    assert expand("{A}", slots, random.Random(0), cap=50) == slots["A"]
    assert expand("plain", slots, random.Random(0), cap=50) == ["plain"]


def test_environment_variables_set_size_and_cap(monkeypatch):
    monkeypatch.setenv("INTENT_DATASET_SIZE", "1234")
    monkeypatch.setenv("INTENT_MAX_COMBOS", "7")
    options = GenerateOptions.from_env()
    assert (options.size, options.max_combos) == (1234, 7)
    assert GenerateOptions.from_env(size=99).size == 99  # an argument wins
    monkeypatch.setenv("INTENT_DATASET_SIZE", "lots")
    with pytest.raises(Exception, match="INTENT_DATASET_SIZE='lots'"):
        GenerateOptions.from_env()


def test_small_template_sets_report_their_shortfall():
    templates = parse_templates({"intents": {"a": ["hello"], "b": ["bye"]}, "slots": {}}, Path("t.json"))
    splits, report = generate(templates, GenerateOptions(size=100, seed=1))
    assert report.short == {"a": 49, "b": 49}


def test_conflicting_utterances_are_dropped_from_both_intents():
    data = {"intents": {"a": ["show cash", "hello there"], "b": ["Show cash", "bye now"]}, "slots": {}}
    splits, report = generate(parse_templates(data, Path("t.json")), GenerateOptions(size=10, seed=1))
    texts = [r.text.lower() for rows in splits.values() for r in rows]
    assert report.conflicts >= 1 and "show cash" not in texts


def test_read_splits_carves_validation_when_missing(tmp_path):
    rows = "".join(json.dumps({"text": f"t{i}", "intent": "ab"[i % 2]}) + "\n" for i in range(100))
    (tmp_path / "train.jsonl").write_text(rows)
    splits = read_splits(tmp_path)
    assert len(splits["val"]) == 10 and len(splits["train"]) == 90 and splits["test"] == []


def test_validation_rows_come_only_from_templates_held_out_of_training():
    # Every template has its own marker word, so each row says which template made it.
    intents = {intent: [f"{intent} marker{intent}{k} for {{N}}" for k in range(10)] for intent in ("alpha", "beta")}
    templates = parse_templates({"intents": intents, "slots": {"N": [str(i) for i in range(40)]}}, Path("t.json"))
    splits, report = generate(templates, GenerateOptions(size=400, seed=5, noise_rate=0.0, affix_rate=0.0))
    markers = {name: {w for r in rows for w in r.text.lower().split() if w.startswith("marker")} for name, rows in splits.items()}
    assert markers["val"] and not markers["val"] & (markers["train"] | markers["test"])
    assert {name: len(held) for name, held in report.val_templates.items()} == {"alpha": 2, "beta": 2}  # 15% of 10, rounded
    assert len(splits["val"]) == 40 and len(splits["train"]) == 320
    # heldout_templates=0: validation rows are drawn with the others, as before.
    _, plain = generate(templates, GenerateOptions(size=400, seed=5, heldout_templates=0.0))
    assert plain.val_templates == {"alpha": [], "beta": []}
