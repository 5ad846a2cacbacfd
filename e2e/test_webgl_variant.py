"""The WebGL variant in Chromium: a copy of the default bundle with WebGL graphs (builder webgl)
runs the transformer tier on the webgl backend (SwiftShader here) and agrees with runtime_py's
fp32 graph, the one the WebGL graphs were rewritten from."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser

from builder.bench.browser import serving
from builder.export.webgl_graph import add_webgl_variant
from runtime_py import Router

from .conftest import PageLog
from .test_demo import UTTERANCES, client_results, open_demo

# One text over 16 tokens: it needs the 32-token graph, which the page opens on first use.
TEXTS = UTTERANCES[:6] + ["could you please show me exactly how my whole brokerage portfolio has performed over the last twelve months"]
# fp32 on both sides: WebGL kernels and onnxruntime differ in the last bits only.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def webgl_bundle(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("webgl") / "bundle"
    shutil.copytree(bundle_dir, out)
    add_webgl_variant(out, TEXTS, (16, 32), log=lambda message: None)
    return out


@pytest.fixture(scope="module")
def webgl_served(webgl_bundle: Path) -> Iterator[str]:
    with serving(webgl_bundle) as base:
        yield base


def test_webgl_variant_answers_on_webgl(gpu_browser: Browser, webgl_served: str, webgl_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTENT_ONNX_VARIANT", "model_fp32")
    expected = Router.from_bundle(webgl_bundle, strict=True, handoff_threshold=1.0)  # the transformer always runs
    ctx = gpu_browser.new_context()
    try:
        log = PageLog()
        page = log.watch(ctx.new_page())
        open_demo(page, webgl_served)
        out = client_results(page, TEXTS, "webgl", router={"handoffThreshold": 1})
        status = out["status"]
        reason = status.get("fallback_reason") or ""
        if status["backend"] != "webgl" and "not available" in reason:
            pytest.skip(f"no WebGL in this browser: {reason}")
        assert status["backend"] == "webgl", reason
        tier = next(t for t in status["tiers"] if t["kind"] == "transformer")
        assert tier["variant"] == "model_webgl_16" and tier["input_type"] == "int32"
        assert [(b["pad_length"], b["loaded"]) for b in tier["buckets"]] == [(16, True), (32, True)]
        problems = []
        for text, got in zip(TEXTS, out["results"]):
            want = expected.classify(text)
            got_tier = next(t for t in got["tiers"] if t["kind"] == "transformer")
            want_tier = next(t for t in want.tiers if t.kind == "transformer")
            confidences = {r["intent"]: r["confidence"] for r in got["ranking"]}
            worst = max(abs(confidences[label] - p) for label, p in want.ranking)
            if got_tier["label"] != want_tier.label or not math.isclose(got_tier["confidence"], want_tier.confidence, abs_tol=TOLERANCE) or worst > TOLERANCE:
                problems.append(f"{text!r}: page {got_tier['label']} {got_tier['confidence']:.6f}, runtime_py {want_tier.label} {want_tier.confidence:.6f} (max |diff| {worst:.2g})")
        assert not problems, "\n".join(problems)
        assert not log.errors, log.errors
    finally:
        ctx.close()
