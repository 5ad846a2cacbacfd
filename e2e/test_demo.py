"""The demo page, served by `python -m builder serve`, in Chromium: it answers what runtime_py answers."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

import runtime_py
from runtime_py import Router

from .conftest import READY_TIMEOUT_MS, PageLog

# A fixed set: in-domain phrasings, slots, an unseen ticker, off-topic and unsure input.
UTTERANCES = [
    "how many shares of AAPL do I own",
    "what's my buying power right now",
    "show me TSLA's performance this year",
    "buy 10 shares of $PLTR",
    "sell half my nvidia position",
    "how is the market doing today",
    "what dividends did I get last month",
    "show my open orders",
    "transfer 500 dollars to my savings",
    "what is the weather in paris",
    "asdf qwerty",
    "portfolio",
]

# Transformer logits from onnxruntime-web's WASM kernels and native onnxruntime differ in the last
# bits (int8 activations are quantized per run), so confidences agree to this, not exactly.
TRANSFORMER_TOLERANCE = 0.02
# WebGPU's int8 kernels quantize activations differently again (0.031 seen on one utterance);
# intents and tiers must still agree exactly.
GPU_TOLERANCE = 0.05
# The WebGL graphs and onnxruntime's fp32 graph differ in the last bits only.
WEBGL_TOLERANCE = 1e-4


def open_demo(page: Page, base: str, query: str = "") -> None:
    page.goto(base + query)
    expect(page.locator("body")).to_have_attribute("data-ready", "all", timeout=READY_TIMEOUT_MS)


def client_results(page: Page, texts: list[str], backend: str, engine: str = "js", router: dict[str, Any] | None = None) -> dict[str, Any]:
    """Results of the page's own runtime (web/client.js in a worker) for `texts`, and its status."""
    return page.evaluate(
        """async ([texts, backend, engine, router]) => {
            const { IntentClient } = await import("./web/client.js");
            const client = await IntentClient.create({ bundleUrl: "./bundle/", backend, engine, router });
            await client.ready();
            const results = [];
            for (const text of texts) results.push(await client.classify(text));
            const status = await client.status();
            client.terminate();
            return { results, status };
        }""",
        [texts, backend, engine, router or {}],
    )


def assert_same(expected: Router, got: list[dict[str, Any]], texts: list[str], tolerance: float) -> None:
    problems = []
    for text, result in zip(texts, got):
        want = expected.classify(text)
        if (result["intent"], result["tier"]) != (want.intent, want.tier):
            problems.append(f"{text!r}: page {result['intent']}/{result['tier']}, runtime_py {want.intent}/{want.tier}")
        elif want.confidence is not None and not math.isclose(result["confidence"], want.confidence, abs_tol=tolerance):
            problems.append(f"{text!r}: confidence {result['confidence']:.6f} vs runtime_py {want.confidence:.6f}")
        elif result["slots"] != want.slots:
            problems.append(f"{text!r}: slots {result['slots']} vs runtime_py {want.slots}")
    assert not problems, "\n".join(problems)


def test_wasm_matches_runtime_py(context: BrowserContext, served: str, router_all: Router) -> None:
    log = PageLog()
    page = log.watch(context.new_page())
    open_demo(page, served)
    out = client_results(page, UTTERANCES, "wasm")
    assert out["status"]["crossOriginIsolated"] is True
    assert_same(router_all, out["results"], UTTERANCES, TRANSFORMER_TOLERANCE)
    assert not log.errors, log.errors
    assert not log.foreign(served), log.foreign(served)


def test_pyodide_engine_is_identical_to_cpython(context: BrowserContext, served: str, router_bow: Router) -> None:
    log = PageLog()
    page = log.watch(context.new_page())
    open_demo(page, served)
    out = client_results(page, UTTERANCES, "wasm", engine="pyodide")
    assert_same(router_bow, out["results"], UTTERANCES, 1e-12)
    # runtime_py's wheel, installed by micropip (both from our origin), not a copy of the sources
    assert (out["status"]["runtime_py"], out["status"]["runtime_installer"]) == (runtime_py.__version__, "micropip")
    assert not log.errors, log.errors
    assert not log.foreign(served), log.foreign(served)


@pytest.mark.parametrize("backend", ["webgpu", "webgl"])
def test_gpu_backends_match_or_say_why(gpu_browser: Browser, served: str, bundle_dir: Path, router_all: Router, backend: str) -> None:
    """Each GPU backend either runs the transformer tier and agrees with runtime_py, or reports
    why it cannot and falls back to WASM, which then agrees. WebGL runs the bundle's WebGL
    graphs, rewritten from the fp32 graph, so it is compared with runtime_py on that one."""
    ctx = gpu_browser.new_context()
    try:
        log = PageLog()
        page = log.watch(ctx.new_page())
        open_demo(page, served)
        out = client_results(page, UTTERANCES, backend)
        ran = out["status"]["backend"]
        if ran == "webgl":
            fp32 = Router.from_bundle(bundle_dir, strict=True, environ={"INTENT_ONNX_VARIANT": "model_fp32"})
            assert_same(fp32, out["results"], UTTERANCES, WEBGL_TOLERANCE)
            assert out["status"]["adapter"]["software"] == ("swiftshader" in out["status"]["adapter"]["name"].lower())
        else:
            assert_same(router_all, out["results"], UTTERANCES, GPU_TOLERANCE if ran == "webgpu" else TRANSFORMER_TOLERANCE)
        assert out["status"]["backend"] in (backend, "wasm")
        if out["status"]["backend"] != backend:
            assert out["status"].get("fallback_reason"), out["status"]
        assert not log.errors, log.errors
    finally:
        ctx.close()


def type_and_wait(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")
    expect(page.locator("#intent")).to_have_attribute("data-last-text", text, timeout=30_000)


def test_page_shows_the_answer(context: BrowserContext, served: str, router_all: Router) -> None:
    log = PageLog()
    page = log.watch(context.new_page())
    open_demo(page, served)
    for text in UTTERANCES[:6]:
        type_and_wait(page, text)
        want = router_all.classify(text)
        expect(page.locator("#intent")).to_contain_text(want.intent)
        # the tier that answered, or "none" where runtime_py answers clarify with no tier sure
        assert (want.tier or "none") in page.locator("#tier").inner_text()
    assert page.locator("#bars [data-intent]").count() == len(router_all.manifest.labels)
    assert not log.errors, log.errors


def test_bad_input_gets_a_clear_message(context: BrowserContext, served: str) -> None:
    page = context.new_page()
    open_demo(page, served)
    page.fill("#text", "x" * 5000)
    page.press("#text", "Enter")
    expect(page.locator("#message")).to_contain_text("4,096", timeout=10_000)
    page.fill("#text", "   ")
    page.press("#text", "Enter")
    expect(page.locator("#message")).not_to_be_empty()


def test_second_visit_reads_the_model_from_cache(context: BrowserContext, served: str) -> None:
    log = PageLog()
    page = log.watch(context.new_page())
    open_demo(page, served)
    first = [u for u in log.requests if "/bundle/onnx/" in u]
    assert first, "the first visit did not download the model"
    # The page preloads manifest.json (static/index.html): the client's own fetch must reuse it, not add one.
    twice = [u for u, n in Counter(u for u in log.requests if "/bundle/" in u).items() if n > 1]
    assert not twice, f"downloaded twice on the first visit (a preload not reused?): {twice}"
    log.requests.clear()
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "all", timeout=READY_TIMEOUT_MS)
    again = [u for u in log.requests if "/bundle/" in u and not u.endswith("manifest.json")]
    assert not again, f"downloaded again: {again}"
    status = page.evaluate("async () => (await window.intentDemo.client.status())")
    assert any(t.get("from_cache") for t in status["tiers"] if t["kind"] == "transformer"), status


def test_static_site_without_isolation_headers(context: BrowserContext, site: str, router_all: Router) -> None:
    """A host that cannot set COOP/COEP: the page still works, single-threaded."""
    log = PageLog()
    page = log.watch(context.new_page())
    open_demo(page, site)
    out = client_results(page, UTTERANCES, "wasm")
    assert out["status"]["crossOriginIsolated"] is False
    assert_same(router_all, out["results"], UTTERANCES, TRANSFORMER_TOLERANCE)
    assert not log.errors, log.errors
    assert not log.foreign(site), log.foreign(site)


def test_a_blended_transformer_tier_blends_in_the_page_as_in_runtime_py(context: BrowserContext, bundle_dir: Path, tmp_path: Path) -> None:
    """`builder blend` on a copy of the bundle: the page's transformer answers (WASM + web/blend.js) equal runtime_py's."""
    import shutil

    from builder.bench.browser import serving
    from builder.data.datasets import read_jsonl
    from builder.train.blend import blend_bundle

    val = bundle_dir.parent.parent / "data" / bundle_dir.name / "val.jsonl"
    if not val.is_file():
        pytest.skip(f"{val} missing (the build writes it)")
    blended = tmp_path / "blended"
    shutil.copytree(bundle_dir, blended)
    blend_bundle(blended, read_jsonl(val)[:300], weight=0.5)
    # handoff 1.0: the BoW tier never answers first, so every text reaches the blended transformer
    expected = Router.from_bundle(blended, environ={}, handoff_threshold=1.0)
    assert type(next(t for t in expected.tiers if t.kind == "transformer")).__name__ == "BlendedTier"
    with serving(blended) as base:
        log = PageLog()
        page = log.watch(context.new_page())
        open_demo(page, base)
        out = client_results(page, UTTERANCES, "wasm", router={"handoffThreshold": 1.0})
    transformer = next(t for t in out["status"]["tiers"] if t["kind"] == "transformer")
    written = next(t for t in json.loads((blended / "manifest.json").read_text())["tiers"] if t["kind"] == "transformer")["blend"]
    assert written["weight"] == 0.5 and transformer["blend"] == {**written, "active": True}
    assert any(r["tier"] == "transformer" for r in out["results"])
    assert_same(expected, out["results"], UTTERANCES, TRANSFORMER_TOLERANCE)
    assert not log.errors, log.errors
