"""The benchmark page (static/bench.html) that `python -m builder bench` drives: a case loads only
the tier it times, and the probabilities it returns are runtime_py's."""

from __future__ import annotations

import json
import urllib.parse

from playwright.sync_api import BrowserContext, expect

from builder.bench.run import QUICK_TIMING
from runtime_py import Router

from .conftest import READY_TIMEOUT_MS, PageLog

TEXTS = {"short": ["how many shares of AAPL do I own", "what is the weather in paris"], "long": ["show me every trade I made last month in my retirement account and what each one cost"]}


def run_case(context: BrowserContext, base: str, case: dict) -> tuple[dict, PageLog]:
    log = PageLog()
    page = log.watch(context.new_page())
    page.goto(base + "bench.html?case=" + urllib.parse.quote(json.dumps({**case, "sets": TEXTS, "timing": QUICK_TIMING})))
    expect(page.locator("body")).to_have_attribute("data-bench", "done", timeout=READY_TIMEOUT_MS)
    return page.evaluate("window.benchResult"), log


def test_bow_case_downloads_only_the_bow_tier_and_matches_runtime_py(context: BrowserContext, served: str, router_bow: Router) -> None:
    result, log = run_case(context, served, {"id": "bow-js", "engine": "js", "tier": "bow"})
    assert result["ok"], result.get("error")
    assert not log.errors
    assert [t["kind"] for t in result["status"]["tiers"]] == ["bow"]
    assert not [u for u in log.requests if u.endswith((".onnx", ".wasm"))], "a BoW case must not fetch the transformer or onnxruntime"
    tier = router_bow.tiers[0]
    assert result["labels"] == tier.labels
    for name, texts in TEXTS.items():
        timed = result["sets"][name]
        assert timed["calls"] >= QUICK_TIMING["minCalls"] and timed["median_ms"] > 0
        for text, got in zip(texts, timed["outputs"]):
            assert max(abs(a - b) for a, b in zip(got, tier.probabilities(text))) < 1e-9
    assert result["first_answer_ms"] >= result["started_ms"]


def test_a_bad_case_comes_back_as_an_error(context: BrowserContext, served: str) -> None:
    result, _ = run_case(context, served, {"id": "x", "engine": "js", "tier": "nope"})
    assert not result["ok"] and 'no tier "nope"' in result["error"]


def test_without_a_case_the_page_offers_the_standard_cases(context: BrowserContext, served: str) -> None:
    page = context.new_page()
    page.goto(served + "bench.html")
    expect(page.locator("#case-list input[type=checkbox]")).to_have_count(7)
    expect(page.locator("body")).to_have_attribute("data-bench", "idle")
