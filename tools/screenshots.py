"""Screenshots of the demo page for the docs (docs/demo*.png), taken in Debian's Chromium.

    .venv/bin/python tools/screenshots.py [--bundle DIR] [--out docs]

Starts ``python -m builder serve --no-build`` on a free loopback port, opens the page once per
view below, types an utterance, waits for every tier, saves a full-page PNG, and stops the server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder.bench.browser import BASE_ARGS, CHROMIUM, GPU_ARGS, serving  # noqa: E402

# (file name, query string, text typed, GPU flags)
VIEWS = [
    ("demo.png", "?engine=js&backend=wasm", "how many shares of $PLTR do I own", False),
    ("demo-transformer.png", "?engine=js&backend=wasm", "am i making money", False),
    ("demo-webgpu.png", "?engine=js&backend=webgpu", "whats my cash balance in my roth ira", True),
    ("demo-pyodide.png", "?engine=pyodide", "how is TSLA doing this year", False),
]


def main() -> int:
    from playwright.sync_api import expect, sync_playwright

    from builder.paths import default_bundle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=default_bundle())
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    with serving(args.bundle) as base, sync_playwright() as pw:
        for name, query, text, gpu in VIEWS:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BASE_ARGS + (GPU_ARGS if gpu else ["--disable-gpu"]))
            page = browser.new_page(viewport={"width": 960, "height": 900}, device_scale_factor=1)
            page.goto(base + query)
            expect(page.locator("body")).to_have_attribute("data-ready", "all", timeout=180_000)
            page.fill("#text", text)
            page.press("#text", "Enter")
            expect(page.locator("#intent")).to_have_attribute("data-last-text", text, timeout=60_000)
            page.screenshot(path=str(args.out / name), full_page=True)
            print(f"wrote {args.out / name}")
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
