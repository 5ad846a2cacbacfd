"""How fast the demo page starts and answers in Chromium, cold and from the cache.

    .venv/bin/python -m benchmarks.page_load [--bundle DIR] [--runs 5] [--engine js|pyodide] [--json OUT]

Starts ``python -m builder serve --no-build`` on a free loopback port. Each run opens a fresh
browser, loads the page twice in one context (the first load downloads and caches the model, the
second reads it from the Cache API), and reads the page's own timings: time to the first tier
(the BoW tier can answer) and to every tier, from the worker's start. It then times 200 round
trips of ``client.classify`` from the page (worker message, routing, reply) on short utterances
that the BoW tier answers, and 50 on one that goes on to the transformer. Medians over runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from builder.bench.browser import BASE_ARGS, CHROMIUM, serving

MEASURE = """async ([easy, hard]) => {
  const client = window.intentDemo.client;
  const status = await client.status();
  const time = async (texts, n) => {
    const out = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await client.classify(texts[i % texts.length]);
      out.push(performance.now() - t);
    }
    out.sort((a, b) => a - b);
    return { median: out[out.length >> 1], p95: out[Math.floor(out.length * 0.95)] };
  };
  for (let i = 0; i < 30; i++) await client.classify(easy[i % easy.length]);  // warm-up
  const bow = await time(easy, 200);
  const last = await client.classify(hard[0]);
  const cascade = await time(hard, 50);
  return { status, bow, cascade, hard_tiers: last.tiers.map((t) => t.tier) };
}"""
EASY = ["how many shares of AAPL do I own", "what's my cash balance", "show my recent trades", "list all my holdings"]
HARD = ["am i making money"]


def one_run(pw, base: str, query: str) -> dict:
    from playwright.sync_api import expect

    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BASE_ARGS + ["--disable-gpu"])
    try:
        context = browser.new_context()
        page = context.new_page()
        out = {}
        for visit in ("cold", "cached"):
            start = time.perf_counter()
            page.goto(base + query)
            expect(page.locator("body")).to_have_attribute("data-ready", "all", timeout=180_000)
            wall = (time.perf_counter() - start) * 1000
            got = page.evaluate(MEASURE, [EASY, HARD])
            timings = got["status"]["timings"]
            out[visit] = {
                "page_ready_ms": wall,
                "first_tier_ms": timings.get("first_tier_ms"),
                "all_tiers_ms": timings.get("all_ms"),
                "from_cache": [t.get("from_cache") for t in got["status"]["tiers"]],
                "bow_roundtrip": got["bow"],
                "cascade_roundtrip": got["cascade"],
                "cascade_tiers": got["hard_tiers"],
                "threads": next((t.get("threads") for t in got["status"]["tiers"] if t["kind"] == "transformer"), None),
            }
        return out
    finally:
        browser.close()


def main() -> int:
    from playwright.sync_api import sync_playwright

    from builder.paths import default_bundle

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=default_bundle())
    parser.add_argument("--runs", type=int, default=5, help="fresh browsers (default 5)")
    parser.add_argument("--engine", choices=["js", "pyodide"], default="js")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args()
    runs = []
    with serving(args.bundle) as base, sync_playwright() as pw:
        for _ in range(max(1, args.runs)):
            runs.append(one_run(pw, base, f"?engine={args.engine}&backend=wasm"))

    def med(visit: str, *keys: str) -> float:
        values = []
        for run in runs:
            value = run[visit]
            for key in keys:
                value = value[key]
            values.append(value)
        return statistics.median(values)

    load = os.getloadavg()
    print(f"{args.engine} engine, {len(runs)} fresh browsers, medians; load average {load[0]:.2f} {load[1]:.2f}")
    print("| visit | page ready | first tier (BoW) | all tiers | BoW round trip (median / p95) | cascade round trip (median / p95) |")
    print("|---|---|---|---|---|---|")
    for visit in ("cold", "cached"):
        print(
            f"| {visit} | {med(visit, 'page_ready_ms'):.0f} ms | {med(visit, 'first_tier_ms'):.0f} ms | {med(visit, 'all_tiers_ms'):.0f} ms "
            f"| {med(visit, 'bow_roundtrip', 'median'):.2f} / {med(visit, 'bow_roundtrip', 'p95'):.2f} ms "
            f"| {med(visit, 'cascade_roundtrip', 'median'):.2f} / {med(visit, 'cascade_roundtrip', 'p95'):.2f} ms |"
        )
    print(f"cascade utterance went through tiers {runs[0]['cold']['cascade_tiers']}; WASM threads: {runs[0]['cold']['threads']}")
    print(f"cached visit read from the cache: {runs[0]['cached']['from_cache']}")
    if args.json:
        args.json.write_text(json.dumps({"engine": args.engine, "runs": runs, "load": load}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
