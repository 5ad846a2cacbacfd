"""Slot extraction from the templates' slot lists and patterns."""

from __future__ import annotations

from runtime_py import SlotExtractor


def test_values_match_case_insensitively_on_word_edges_longest_first(finance_templates):
    slots = SlotExtractor(finance_templates.slots)
    assert slots.extract("Move cash into my roth ira and buy aapl, MSFT") == {
        "ACCOUNT": ["Roth IRA"],
        "FACT_TOPIC": ["Roth IRA"],
        "SYMBOL": ["AAPL", "MSFT"],
    }
    assert slots.extract("SPYGLASS and AMDX are not tickers; spy is") == {"SYMBOL": ["SPY"]}
    assert slots.extract("how did I do this year vs last month")["TIMEFRAME"] == ["this year", "last month"]


def test_repeats_collapse_and_order_is_by_position():
    slots = SlotExtractor({"SYMBOL": ["AAPL", "TSLA"]})
    assert slots.extract("TSLA then aapl then tsla") == {"SYMBOL": ["TSLA", "AAPL"]}


def test_patterns_find_unlisted_values_but_not_other_slots_values(finance_templates):
    slots = SlotExtractor(finance_templates.slots, finance_templates.slot_patterns)
    assert slots.extract("what is $pltr at, and $AAPL") == {"SYMBOL": ["PLTR", "AAPL"]}
    custom = SlotExtractor({"ACCOUNT": ["IRA"]}, {"SYMBOL": {"regex": r"\b[A-Z]{2,5}\b", "exclude": ["ETF"]}})
    assert custom.extract("IRA ETF NVDA") == {"ACCOUNT": ["IRA"], "SYMBOL": ["NVDA"]}


def test_missing_required_slots(finance_templates):
    slots = SlotExtractor.from_manifest(finance_templates.slot_spec())
    found = slots.extract("how many shares do I own")
    assert slots.missing("positions", found) == ["SYMBOL"]
    assert slots.missing("positions", slots.extract("how many TSLA shares")) == []
    assert slots.missing("cash_balance", found) == []


def test_hostile_text_is_handled():
    slots = SlotExtractor({"SYMBOL": ["AAPL"]}, {"X": {"regex": r"\$(?P<value>[a-z]+)", "case": "upper"}})
    assert slots.extract("\x00\ufffd" + "a" * 4000 + " $abc") == {"X": ["ABC"]}
