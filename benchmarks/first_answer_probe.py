"""The BoW tier's first answer on the bench page, stage by stage, in fresh contexts of one browser
(faster than `builder bench` for A/B comparisons of the page's start-up; docs/BENCHMARKS.md, "First answer").

    .venv/bin/python -m benchmarks.first_answer_probe [--bundle DIR] [--runs 8] [--cached] [--no-prefetch] [--serve-arg=--no-bundle-js] [--blank | --floors] [--timeline]

Each run opens bench.html with the `bow-js` case in a new context and prints, in ms from navigation:
the page script's start, the worker engine's start, the first answer, and the worker's manifest and
tier stages; then the medians from the client's start. `--timeline` adds when the page's own files
arrived. `--cached` opens every run in one context (a new page each), so after the uncounted first
visit the files come from the HTTP cache and the Cache API, as on a second visit.

`--blank` instead times a one-line inline script on the same server: what a fresh context costs
before any of our code runs. `--floors` times that and the browser's other steps (:data:`FLOORS`: a
module script, an empty worker's first message, the served worker's first reply): the least a page
that answers through them can wait.
"""

from __future__ import annotations

import argparse
import json
import statistics
import urllib.parse
from pathlib import Path
from typing import Any

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


# What the browser costs before any of our work, in ms from navigation to window.t: the page (HTML)
# and the files it loads, served by a route of the same origin. "web/worker.js" is the served worker
# bundle answering its first message.
_REPLY = "w.onmessage = () => { window.t = performance.now(); };"
_EMPTY_WORKER = {"w.js": "postMessage(0);"}
FLOORS: dict[str, tuple[str, dict[str, str]]] = {
    "inline script": ("<script>window.t = performance.now()</script>", {}),
    "module script": ('<script type="module" src="m.js"></script>', {"m.js": "window.t = performance.now();"}),
    "empty worker, started by a module script": ('<script type="module" src="m.js"></script>',
                                                 {"m.js": f"const w = new Worker('w.js', {{type: 'module'}}); {_REPLY}", **_EMPTY_WORKER}),
    "empty worker, started by an inline script": (f"<script>const w = new Worker('w.js', {{type: 'module'}}); {_REPLY}</script>", _EMPTY_WORKER),
    "web/worker.js's first reply, started by an inline script": (
        f"<script>const w = new Worker('web/worker.js', {{type: 'module'}}); w.postMessage({{id: 1, op: 'status'}}); {_REPLY}</script>", {}),
}


def _fulfil(body: str, kind: str) -> Any:
    # a one-argument handler: Playwright passes the request too to one that takes two
    return lambda route: route.fulfill(body=body, content_type=kind)


def floors(browser: Any, base: str, runs: int, pages: dict[str, tuple[str, dict[str, str]]]) -> None:
    """Print, per page of `pages`, each run's ms from navigation to ``window.t`` and the median."""
    for name, (html, files) in pages.items():
        times = []
        for i in range(runs + 1):  # the first is not counted
            context = browser.new_context()
            page = context.new_page()
            for path, body in {"floor.html": html, **files}.items():
                page.route(base + path, _fulfil(body, "text/html" if path.endswith(".html") else "text/javascript"))
            page.goto(base + "floor.html")
            page.wait_for_function("window.t !== undefined", timeout=60_000)
            if i:
                times.append(page.evaluate("window.t"))
            context.close()
        print(f"{name}: median {statistics.median(times):.0f} ms ({', '.join(f'{t:.0f}' for t in times)})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=default_bundle())
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--no-prefetch", action="store_true", help="the client does not prefetch the BoW file in the page")
    parser.add_argument("--serve-arg", action="append", default=[], help="passed to `builder serve` (e.g. --no-bundle-js)")
    parser.add_argument("--blank", action="store_true", help="time a one-line inline script instead")
    parser.add_argument("--floors", action="store_true", help="time the browser's own steps instead (FLOORS): scripts and workers that do nothing")
    parser.add_argument("--cached", action="store_true", help="one context for every run: second visits (the files cached)")
    parser.add_argument("--timeline", action="store_true", help="also print when the page's own files arrived (Navigation and Resource Timing)")
    args = parser.parse_args()
    case = {**CASE, "prefetch": not args.no_prefetch}
    from_start: list[float] = []
    from_navigation: list[float] = []
    with serving(args.bundle, args.serve_arg) as base, sync_playwright() as pw:
        browser = launch(pw, gpu=True)
        if args.blank or args.floors:
            floors(browser, base, args.runs, FLOORS if args.floors else {"inline script": FLOORS["inline script"]})
            browser.close()
            return 0
        shared = browser.new_context() if args.cached else None
        for i in range(args.runs + 1):  # the first warms the browser process (and, --cached, the caches) and is not counted
            context = shared or browser.new_context()
            page = context.new_page()
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
