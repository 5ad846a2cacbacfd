"""Importing CSV, JSONL and production logs into the split layout."""

from __future__ import annotations

import json

import pytest

from builder.data.datasets import import_files, read_jsonl
from builder.errors import BuildError


def test_csv_jsonl_and_logs_combine(tmp_path):
    (tmp_path / "a.csv").write_text("Text,Intent\nshow cash,cash_balance\n\"price of aapl, now\",quotes\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "my holdings", "intent": "positions_list"}) + "\n\n")
    logs = [
        {"raw_input": "what's my balance", "intent": "cash_balance", "execution_success": True},
        {"raw_input": "sell everything", "intent": "activity", "execution_success": False},
        {"raw_input": "deposit 50", "intent": "transfers", "execution_success": "true"},
        {"raw_input": "   ", "intent": "transfers", "execution_success": 1},
    ]
    (tmp_path / "logs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logs))
    rows, report = import_files([tmp_path / "a.csv", tmp_path / "b.jsonl", tmp_path / "logs.jsonl"])
    texts = {r.text: r.intent for r in rows}
    assert texts == {
        "show cash": "cash_balance",
        "price of aapl, now": "quotes",
        "my holdings": "positions_list",
        "what's my balance": "cash_balance",
        "deposit 50": "transfers",
    }
    assert (report.read, report.failed_executions, report.empty) == (7, 1, 1)


def test_duplicates_and_conflicts_keep_the_majority(tmp_path):
    rows = [("Show cash", "cash"), ("show  cash", "cash"), ("show cash", "quotes"), ("x", "y")]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t, "intent": i}) + "\n" for t, i in rows))
    examples, report = import_files([tmp_path / "d.jsonl"])
    assert {(e.text, e.intent) for e in examples} == {("Show cash", "cash"), ("x", "y")}
    assert (report.duplicates, report.conflicts) == (1, 1)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("x.csv", "utterance,label\nhi,greet\n", r"x\.csv:1: CSV header must have 'text' and 'intent'"),
        ("x.jsonl", '{"text": "a", "intent": "b"}\n{broken\n', r"x\.jsonl:2: invalid JSON"),
        ("x.jsonl", '{"utterance": "a"}\n', r"x\.jsonl:1: expected 'text' and 'intent'"),
        ("x.jsonl", '{"text": "a", "intent": ""}\n', r"x\.jsonl:1: 'intent' must be a non-empty string"),
        ("x.jsonl", '["a", "b"]\n', r"x\.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(BuildError, match=message):
        import_files([tmp_path / name])


def test_read_jsonl_reports_line_numbers(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"text": "a", "intent": "b"}\n{"text": 3, "intent": "b"}\n')
    with pytest.raises(BuildError, match=r"t\.jsonl:2: 'text' must be a string"):
        read_jsonl(tmp_path / "t.jsonl")
