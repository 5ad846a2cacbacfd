"""The BoW tier's first answer on the bench page, stage by stage, in fresh contexts of one browser
(faster than `builder bench` for A/B comparisons of the page's start-up; docs/BENCHMARKS.md, "First answer").

    .venv/bin/python -m benchmarks.first_answer_probe [--bundle DIR] [--runs 8] [--cached] [--no-prefetch] [--serve-arg=--no-bundle-js] [--blank] [--timeline]

Each run opens bench.html with the `bow-js` case in a new context and prints, in ms from navigation:
the page script's start, the worker engine's start, the first answer, and the worker's manifest and
tier stages; then the medians from the client's start. `--timeline` adds when the page's own files
arrived. `--blank` instead times a one-line inline
script on the same server: what a fresh context costs before any of our code runs. `--cached` opens
every run in one context (a new page each), so after the uncounted first visit the files come from
the HTTP cache and the Cache API, as on a second visit.
"""

from __future__ import annotations

import argparse
import json
import statistics
import urllib.parse
from pathlib import Path

from playwright.sync_api import sync_playwright

from builder.bench.browser import launch, serving
from builder.paths import default_bundle

CASE = {"id": "bow-js", "engine": "js", "tier": "bow", "sets": {"short": ["how is AAPL doing"]},
        "timing": {"warmupMs": 10, "minCalls": 3, "maxCalls": 3}}


# ms from navigation: the HTML, the page's scripts and the bundle files arriving, and the DOM's milestones
TIMELINE_JS = """() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const out = { html: nav.responseEnd, dom_interactive: nav.domInteractive };
    for (const r of performance.getEntriesByType("resource")) {
        const name = new URL(r.name).pathname.split("/").slice(-2).join("/");
        if (/(bench\\.js|client\\.js|style\\.css|manifest\\.json|bow\\.json)$/.test(name)) out[name] = r.responseEnd;
    }
    return out;
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=default_bundle())
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--no-prefetch", action="store_true", help="the client does not prefetch the BoW file in the page")
    parser.add_argument("--serve-arg", action="append", default=[], help="passed to `builder serve` (e.g. --no-bundle-js)")
    parser.add_argument("--blank", action="store_true", help="time a one-line inline script instead")
    parser.add_argument("--cached", action="store_true", help="one context for every run: second visits (the files cached)")
    parser.add_argument("--timeline", action="store_true", help="also print when the page's own files arrived (Navigation and Resource Timing)")
    args = parser.parse_args()
    case = {**CASE, "prefetch": not args.no_prefetch}
    from_start: list[float] = []
    from_navigation: list[float] = []
    with serving(args.bundle, args.serve_arg) as base, sync_playwright() as pw:
        browser = launch(pw, gpu=True)
        shared = browser.new_context() if args.cached else None
        for i in range(args.runs + 1):  # the first warms the browser process (and, --cached, the caches) and is not counted
            context = shared or browser.new_context()
            page = context.new_page()
            if args.blank:
                page.route(base + "blank.html", lambda r: r.fulfill(body="<script>window.t = performance.now()</script>", content_type="text/html"))
                page.goto(base + "blank.html")
                if i:
                    print(f"inline script at {page.evaluate('window.t'):.0f} ms")
                context.close()
                continue
            page.goto(base + "bench.html?case=" + urllib.parse.quote(json.dumps(case)))
            page.wait_for_function("document.body.dataset.bench === 'done'", timeout=120_000)
            r = page.evaluate("window.benchResult")
            timeline = page.evaluate(TIMELINE_JS) if args.timeline else None
            page.close()
            if shared is None:
                context.close()
            if not i:
                continue
            if timeline:
                print("  " + ", ".join(f"{k} {v:.0f}" for k, v in timeline.items()))
            t = r["status"]["timings"]
            from_start.append(r["first_answer_ms"] - r["started_ms"])
            from_navigation.append(r["first_answer_ms"])
            print(f"client start {r['started_ms']:.0f}, engine start {r['engine_started_ms']:.0f}, first answer {r['first_answer_ms']:.0f}"
                  f" (manifest {t.get('manifest_ms', 0):.0f}, tier {t['first_tier_ms'] - t.get('manifest_ms', 0):.0f})")
        browser.close()
    if from_start:
        visits = "cached" if args.cached else "cold"
        print(f"median first answer ({visits}): {statistics.median(from_navigation):.0f} ms from navigation, "
              f"{statistics.median(from_start):.0f} ms from the client's start, over {len(from_start)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
