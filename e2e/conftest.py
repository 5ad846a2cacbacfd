"""Browser tests: the served demo and the static site in Debian's Chromium, driven by Playwright.

Servers are started here as subprocesses on free loopback ports and stopped by their PID. Each
test gets a fresh browser context (empty cache) unless it asks for a shared one.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, Request, sync_playwright

from builder.bench.browser import CHROMIUM, launch, serving
from builder.paths import default_bundle
from runtime_py import Router

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_MS = 120_000


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    bundle = default_bundle()
    if not (bundle / "manifest.json").is_file():
        pytest.fail(f"no bundle at {bundle}: run `.venv/bin/python -m builder build` (make test-e2e does)")
    return bundle


@pytest.fixture(scope="session")
def served(bundle_dir: Path) -> Iterator[str]:
    with serving(bundle_dir) as base:
        yield base


class _PlainStaticHandler(http.server.SimpleHTTPRequestHandler):
    """A static host that cannot set headers: correct MIME types, no COOP/COEP."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def site(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m builder site` written to a folder and served by a plain static server."""
    out = tmp_path_factory.mktemp("site") / "public"
    subprocess.run(
        [sys.executable, "-m", "builder", "site", "--bundle", str(bundle_dir), "--out", str(out)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with static_server(out) as base:
        yield base


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """`folder` behind a plain static server (no COOP/COEP headers) on a free loopback port: its base URL."""
    handler = functools.partial(_PlainStaticHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (make chromium)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = launch(playwright)
    yield b
    b.close()


@pytest.fixture(scope="session")
def gpu_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium with WebGPU and WebGL on SwiftShader."""
    b = launch(playwright, gpu=True)
    yield b
    b.close()


@dataclass
class PageLog:
    """What a page did: console errors, uncaught exceptions, and every request it made."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def on_console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(f"console.error: {msg.text}")

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def watch(self, page: Page) -> Page:
        page.on("console", self.on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("request", self.on_request)
        page.on("worker", lambda w: w.on("console", self.on_console))
        return page

    def foreign(self, base: str) -> list[str]:
        return [u for u in self.requests if not u.startswith(base) and not u.startswith(("data:", "blob:"))]


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context()
    yield ctx
    ctx.close()


@pytest.fixture(scope="session")
def router_all(bundle_dir: Path) -> Router:
    return Router.from_bundle(bundle_dir, strict=True)


@pytest.fixture(scope="session")
def router_bow(bundle_dir: Path) -> Router:
    return Router.from_bundle(bundle_dir, tiers=["bow"], strict=True)
