"""Routing decisions: threshold, ambiguity, force, clarify, escalation, unknown labels, config."""

from __future__ import annotations

import pytest

from runtime_py import InputError, IntentKitError, Router, SlotExtractor

from conftest import ScriptedTier

LABELS = ["cash_balance", "positions", "quotes"]
NO_ENV: dict[str, str] = {}


def router(*tiers, **options) -> Router:
    options.setdefault("environ", NO_ENV)
    return Router(list(tiers), **options)


def test_confident_first_tier_answers_and_later_tier_is_not_run():
    first = ScriptedTier("bow", LABELS, [0.9, 0.05, 0.05])
    second = ScriptedTier("big", LABELS, [0.1, 0.8, 0.1])
    result = router(first, second).classify("cash")
    assert (result.intent, result.tier, result.reason) == ("cash_balance", "bow", "confident")
    assert result.confidence == pytest.approx(0.9)
    assert second.calls == 0
    assert [r.tier for r in result.tiers] == ["bow"]


def test_earlier_tier_uses_handoff_threshold_and_last_tier_the_classifier_threshold():
    # 0.7 is below the 0.75 hand-off threshold of a first tier, but above the 0.6 of the last one.
    first = ScriptedTier("bow", LABELS, [0.7, 0.2, 0.1])
    second = ScriptedTier("big", LABELS, [0.1, 0.7, 0.2])
    result = router(first, second).classify("x")
    assert (result.intent, result.tier) == ("positions", "big")
    assert [r.reason for r in result.tiers] == ["below_threshold", "confident"]
    assert [r.threshold for r in result.tiers] == [0.75, 0.6]
    alone = router(ScriptedTier("bow", LABELS, [0.7, 0.2, 0.1])).classify("x")
    assert (alone.intent, alone.tier) == ("cash_balance", "bow")


def test_below_threshold_everywhere_gives_clarify_with_diagnostics():
    result = router(ScriptedTier("bow", LABELS, [0.5, 0.3, 0.2])).classify("hmm")
    assert (result.intent, result.tier, result.reason, result.confidence) == ("clarify", None, "below_threshold", None)
    assert result.is_fallback
    report = result.tiers[0]
    assert (report.label, report.accepted) == ("cash_balance", False)
    assert report.confidence == pytest.approx(0.5)
    assert [label for label, _ in result.ranking] == ["cash_balance", "positions", "quotes"]


def test_ambiguous_top_two_goes_to_next_tier_then_clarify():
    tight = [0.62, 0.55, 0.0]  # confident enough, but the runner-up is within 0.1
    result = router(ScriptedTier("bow", LABELS, [0.8, 0.75, 0.0]), ScriptedTier("big", LABELS, tight)).classify("x")
    assert [r.reason for r in result.tiers] == ["ambiguous", "ambiguous"]
    assert result.intent == "clarify" and result.reason == "ambiguous"
    assert router(ScriptedTier("bow", LABELS, tight), margin=0.05).classify("x").intent == "cash_balance"


def test_force_accepts_the_last_tier_whatever_its_confidence():
    result = router(ScriptedTier("bow", LABELS, [0.2, 0.5, 0.3]), ScriptedTier("big", LABELS, [0.3, 0.3, 0.4]), force=True).classify("x")
    assert (result.intent, result.tier, result.reason) == ("quotes", "big", "forced")
    assert result.confidence == pytest.approx(0.4)


def test_unknown_label_is_reported_not_used():
    tiers = [ScriptedTier("bow", ["legacy_intent", "quotes"], [0.95, 0.05])]
    result = router(*tiers, known_intents={"quotes"}, force=True).classify("x")
    assert result.intent == "clarify" and result.reason == "unknown_label"
    assert result.tiers[0].label == "legacy_intent"


def test_escalation_hook_answers_when_no_tier_is_confident():
    seen = []

    def hook(text, result):
        seen.append((text, result.reason))
        return ("quotes", 0.99)

    result = router(ScriptedTier("bow", LABELS, [0.4, 0.3, 0.3]), escalate=hook).classify("price pls")
    assert seen == [("price pls", "below_threshold")]
    assert (result.intent, result.tier, result.reason, result.confidence) == ("quotes", "escalation", "escalated", 0.99)
    assert result.escalation["called"] and result.escalation["label"] == "quotes"


def test_escalation_hook_is_not_called_when_a_tier_is_confident_and_its_failures_are_contained():
    calls = []
    confident = router(ScriptedTier("bow", LABELS, [0.9, 0.05, 0.05]), escalate=lambda t, r: calls.append(t))
    assert confident.classify("x").intent == "cash_balance" and calls == []

    def broken(text, result):
        raise TimeoutError("LLM endpoint timed out")

    result = router(ScriptedTier("bow", LABELS, [0.4, 0.3, 0.3]), escalate=broken).classify("x")
    assert result.intent == "clarify" and "TimeoutError" in result.escalation["error"]
    unknown = router(ScriptedTier("bow", LABELS, [0.4, 0.3, 0.3]), escalate=lambda t, r: "weather", known_intents=LABELS)
    result = unknown.classify("x")
    assert result.intent == "clarify" and "unknown intent" in result.escalation["error"]


def test_a_failing_tier_is_reported_and_skipped():
    result = router(ScriptedTier("bow", LABELS, RuntimeError("boom")), ScriptedTier("big", LABELS, [0.1, 0.8, 0.1])).classify("x")
    assert (result.intent, result.tier) == ("positions", "big")
    assert result.tiers[0].reason == "error" and "boom" in result.tiers[0].error


def test_no_tiers_gives_clarify():
    result = router().classify("anything")
    assert (result.intent, result.reason, result.tiers) == ("clarify", "no_tier", [])


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \u3000", "\x00\x01"])
def test_empty_or_blank_input_is_a_sane_clarify(text):
    tier = ScriptedTier("bow", LABELS, [0.9, 0.05, 0.05])
    result = router(tier).classify(text)
    if text.strip():
        assert result.intent == "cash_balance"  # control characters are text the tier can look at
    else:
        assert (result.intent, result.reason) == ("clarify", "empty_input") and tier.calls == 0


def test_huge_input_is_refused_quickly_with_a_clear_error():
    with pytest.raises(InputError, match=r"1,048,576 characters; the limit is 4,096"):
        router(ScriptedTier("bow", LABELS, [0.9, 0.05, 0.05])).classify("a" * 1_048_576)
    ok = router(ScriptedTier("bow", LABELS, [0.9, 0.05, 0.05]), max_chars=2_000_000).classify("a " * 500_000)
    assert ok.intent == "cash_balance"


@pytest.mark.parametrize("bad", [None, 42, ["list"], {"text": "x"}])
def test_non_text_input_is_a_type_error_message(bad):
    with pytest.raises(InputError, match="expected text as str"):
        router().classify(bad)


def test_bytes_and_lone_surrogates_are_cleaned():
    tier = ScriptedTier("bow", LABELS, [0.9, 0.05, 0.05])
    assert router(tier).classify(b"cash \xff\xfe balance").intent == "cash_balance"
    assert router(tier).classify("cash \ud800 balance \udfff").intent == "cash_balance"


def test_settings_come_from_arguments_then_environment():
    env = {"INTENT_THRESHOLD": "0.9", "INTENT_MARGIN": "0.2", "INTENT_FORCE": "yes", "INTENT_THRESHOLD_BOW": "0.3"}
    tiers = [ScriptedTier("bow", LABELS, [0.5, 0.4, 0.1]), ScriptedTier("big", LABELS, [0.85, 0.1, 0.05])]
    r = Router(tiers, environ=env)
    assert (r.margin, r.force) == (0.2, True)
    assert r.thresholds == {"bow": (0.3, 0.75), "big": (0.9, 0.75)}
    r = Router(tiers, environ=env, threshold=0.5, margin=0.05, force=False, tier_thresholds={"bow": 0.4})
    assert (r.margin, r.force, r.thresholds["big"][0], r.thresholds["bow"][0]) == (0.05, False, 0.5, 0.4)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"INTENT_THRESHOLD": "high"}, "INTENT_THRESHOLD='high': expected a number"),
        ({"INTENT_MARGIN": "1.5"}, "INTENT_MARGIN='1.5'"),
        ({"INTENT_FORCE": "maybe"}, "INTENT_FORCE='maybe': expected true/false"),
    ],
)
def test_bad_environment_values_are_clear_errors(env, message):
    with pytest.raises(IntentKitError, match=message):
        Router([ScriptedTier("bow", LABELS, [1, 0, 0])], environ=env)


def test_threshold_argument_out_of_range_is_an_error():
    with pytest.raises(IntentKitError, match="threshold=1.5"):
        router(ScriptedTier("bow", LABELS, [1, 0, 0]), threshold=1.5)


def test_slots_and_missing_required_slots_are_reported():
    slots = SlotExtractor({"SYMBOL": ["AAPL", "MSFT"]}, required={"quotes": ["SYMBOL"]})
    tier = ScriptedTier("bow", LABELS, [0.02, 0.03, 0.95])
    assert router(tier, slots=slots).classify("price of aapl").slots == {"SYMBOL": ["AAPL"]}
    result = router(tier, slots=slots).classify("price please")
    assert result.missing_slots == ["SYMBOL"]
    data = result.to_dict()
    assert data["ranking"][0] == {"intent": "quotes", "confidence": pytest.approx(0.95)}
    assert data["missing_slots"] == ["SYMBOL"]


OOS_LABELS = ["cash_balance", "oos", "quotes"]


def test_confident_oos_label_answers_clarify_out_of_scope_from_that_tier():
    slots = SlotExtractor({"SYMBOL": ["AAPL"]}, required={"quotes": ["SYMBOL"]})
    first = ScriptedTier("bow", OOS_LABELS, [0.05, 0.9, 0.05])
    second = ScriptedTier("big", OOS_LABELS, [0.9, 0.05, 0.05])
    result = router(first, second, oos_labels=["oos"], slots=slots).classify("what's the weather in AAPL town")
    assert (result.intent, result.tier, result.reason) == ("clarify", "bow", "out_of_scope")
    assert result.confidence == pytest.approx(0.9) and not result.is_fallback
    assert second.calls == 0 and result.tiers[0].reason == "confident"
    assert result.missing_slots == [] and result.slots == {"SYMBOL": ["AAPL"]}
    assert result.to_dict()["reason"] == "out_of_scope"


def test_unsure_oos_label_lets_the_cascade_go_on():
    # 0.7 < the 0.75 hand-off threshold: the next tier decides.
    first = ScriptedTier("bow", OOS_LABELS, [0.2, 0.7, 0.1])
    second = ScriptedTier("big", OOS_LABELS, [0.05, 0.05, 0.9])
    result = router(first, second, oos_labels=["oos"]).classify("x")
    assert (result.intent, result.tier, result.reason) == ("quotes", "big", "confident")
    last = router(ScriptedTier("bow", OOS_LABELS, [0.3, 0.5, 0.2]), oos_labels=["oos"]).classify("x")
    assert (last.intent, last.tier, last.reason) == ("clarify", None, "below_threshold")
    # Without oos_labels the label is an ordinary intent.
    plain = router(ScriptedTier("bow", OOS_LABELS, [0.05, 0.9, 0.05])).classify("x")
    assert (plain.intent, plain.reason) == ("oos", "confident")


def test_oos_labels_are_never_unknown_labels_and_come_from_the_manifest():
    from runtime_py.bundle import parse_manifest

    tier = ScriptedTier("bow", OOS_LABELS, [0.05, 0.9, 0.05])
    result = router(tier, oos_labels=["oos"], known_intents={"cash_balance", "quotes"}).classify("x")
    assert result.reason == "out_of_scope"
    entry = {"path": "bow.json", "bytes": 1, "sha256": "0" * 64}
    manifest = parse_manifest({
        "format": "edge-intent-bundle", "format_version": 1, "labels": OOS_LABELS,
        "tiers": [{"name": "bow", "kind": "bow", "files": {"model": entry}}], "routing": {"oos_labels": ["oos"]},
    })
    assert manifest.oos_labels == ["oos"]
    from_manifest = router(tier, manifest=manifest)
    assert from_manifest.classify("x").reason == "out_of_scope"
    assert from_manifest.status()["routing"]["oos_labels"] == ["oos"]
    with pytest.raises(IntentKitError, match=r"routing\.oos_labels: expected a list of label names"):
        parse_manifest({**manifest.raw, "routing": {"oos_labels": "oos"}})
