"""The BoW tier's load, step by step, in fresh contexts of one browser (docs/BENCHMARKS.md,
"First answer (session 5)"): what each step of RemoteBundle's download and BowModel's build costs
on a page's thread when nothing else of ours runs.

    .venv/bin/python -m benchmarks.bow_load_steps [--bundle DIR] [--runs 5]

Each run opens the idle bench page in a new context and times, in order: opening the Cache API, a
cache miss, the manifest, bow.json, its sha256, creating the Response a cache write needs, the
synchronous part of cache.put and the rest of it, decoding, JSON.parse, importing bow.js (source
modules), BowModel.fromJson and the first logits.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

from builder.bench.browser import launch, serving
from builder.paths import default_bundle

STEPS_JS = """async () => {
    const out = [];
    let last = performance.now();
    const mark = (name) => { const now = performance.now(); out.push([name, +(now - last).toFixed(1)]); last = now; };
    const cache = await caches.open("probe"); mark("caches.open");
    await cache.match("bundle/bow.json?probe"); mark("cache.match (miss)");
    const manifest = await (await fetch("bundle/manifest.json", { cache: "no-cache" })).json(); mark("manifest");
    const bytes = new Uint8Array(await (await fetch("bundle/bow.json", { cache: "no-cache" })).arrayBuffer()); mark("bow.json");
    await crypto.subtle.digest("SHA-256", bytes); mark("sha256");
    const response = new Response(bytes, { headers: { "Content-Type": "application/json" } }); mark("new Response (copies the bytes)");
    const put = cache.put("bundle/bow.json?probe", response); mark("cache.put, synchronous part");
    await put; mark("cache.put, the rest");
    const text = new TextDecoder().decode(bytes); mark("decode");
    const data = JSON.parse(text); mark("JSON.parse");
    const { BowModel } = await import("./web/bow.js"); mark("import bow.js");
    const model = BowModel.fromJson(data); mark("BowModel.fromJson");
    model.logits("how is AAPL doing"); mark("first logits");
    return out;
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=default_bundle())
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with serving(args.bundle) as base, sync_playwright() as pw:
        browser = launch(pw, gpu=True)
        for _ in range(args.runs):
            context = browser.new_context()
            page = context.new_page()
            page.goto(base + "bench.html")
            page.wait_for_function("document.body.dataset.bench === 'idle'")
            print(", ".join(f"{name} {ms:.1f}" for name, ms in page.evaluate(STEPS_JS)))
            context.close()
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
