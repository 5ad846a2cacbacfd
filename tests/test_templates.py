"""Bad template files fail with a message that names the file and the place."""

from __future__ import annotations

import json

import pytest

from builder.data.templates import load_templates
from builder.errors import BuildError

GOOD = {"intents": {"quotes": ["price of {SYMBOL}"], "cash": ["my cash"]}, "slots": {"SYMBOL": ["AAPL"]}}


def write(tmp_path, data, name="t.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def test_default_templates_meet_the_brief(finance_templates):
    t = finance_templates
    # The brief's 11 intents plus "oos", off-topic requests the router answers with "clarify".
    assert len(t.intents) == 12 and "clarify" not in t.intents and "oos" in t.intents
    assert all(len(items) >= 15 for items in t.intents.values())
    assert t.slots["SYMBOL"][:3] == ["AAPL", "MSFT", "VOO"] and len(t.slots["SYMBOL"]) == 12
    assert set(t.slots) == {"SYMBOL", "TIMEFRAME", "FACT_TOPIC", "ACCOUNT"}
    assert t.typos["performance"] == ["perfomance", "performnce"]
    assert "in my {ACCOUNT}" in t.suffixes


def test_good_file_loads(tmp_path):
    t = load_templates(write(tmp_path, GOOD))
    assert t.intents["quotes"] == ["price of {SYMBOL}"]
    assert t.required_slots == {"quotes": ["SYMBOL"]}  # derived: in every template of the intent


@pytest.mark.parametrize(
    "data, message",
    [
        ('{"intents": {"a": ["x"],}', r"t\.json:1:\d+: invalid JSON"),
        ('{\n  "intents": {\n    "a": ["x"]\n  ,\n}', r"t\.json:5:1: invalid JSON"),
        ({**GOOD, "intents": {"quotes": ["price of {SYMBL}"], "cash": ["c"]}}, r"intents\.quotes\[0\]: placeholder \{SYMBL\}.*has no slot.*SYMBOL"),
        ({**GOOD, "intents": {"quotes": [], "cash": ["c"]}}, r"intents\.quotes: is empty"),
        ({**GOOD, "intents": {"quotes": ["ok", "  "], "cash": ["c"]}}, r"intents\.quotes\[1\]: expected a non-empty string"),
        ({**GOOD, "intents": {"quotes": ["price {SYMBOL"], "cash": ["c"]}}, r"intents\.quotes\[0\]: unbalanced brace"),
        ({**GOOD, "intents": {"clarify": ["x"], "cash": ["c"]}}, r"'clarify' is the fallback"),
        ({**GOOD, "intents": {"only": ["x"]}}, r"at least two intents"),
        ({**GOOD, "slots": {"SYMBOL": []}}, r"slots\.SYMBOL: is empty"),
        ({**GOOD, "suffixes": ["in my {ACCT}"]}, r"suffixes\[0\]: placeholder \{ACCT\}"),
        ({**GOOD, "intent": {}}, r"unknown keys \['intent'\]"),
        ({**GOOD, "slot_patterns": {"SYMBOL": {"regex": "([A-Z"}}}, r"slot_patterns\.SYMBOL\.regex: invalid regular expression"),
        ({**GOOD, "required_slots": {"quotes": ["TICKER"]}}, r"required_slots\.quotes: 'TICKER' is not a slot"),
        ("[1, 2]", r"expected a JSON object"),
    ],
)
def test_bad_files_name_file_and_place(tmp_path, data, message):
    with pytest.raises(BuildError, match=message) as info:
        load_templates(write(tmp_path, data))
    assert "t.json" in str(info.value)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(BuildError, match="templates file not found"):
        load_templates(tmp_path / "nope.json")
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"intents": "caf\xe9"}')
    with pytest.raises(BuildError, match="not UTF-8"):
        load_templates(path)
