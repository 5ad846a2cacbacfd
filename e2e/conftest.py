"""Browser tests: the served demo and the static site in Debian's Chromium, driven by Playwright.

Servers are started here as subprocesses on free loopback ports and stopped by their PID. Each
test gets a fresh browser context (empty cache) unless it asks for a shared one.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, Request, sync_playwright

from builder.paths import default_bundle
from runtime_py import Router

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("INTENT_CHROMIUM", "/usr/bin/chromium")
# Headless as root on a machine with no outside network (PLATFORM.md, "Browser side").
BASE_ARGS = [
    "--no-sandbox",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# WebGPU and WebGL need a GPU process; here both run on SwiftShader, the software adapter.
GPU_ARGS = ["--enable-unsafe-webgpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
READY_TIMEOUT_MS = 120_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen | None, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_serve(bundle: Path, port: int, output: Any = subprocess.DEVNULL) -> subprocess.Popen:
    """`python -m builder serve --no-build` on 127.0.0.1:`port` (stop it with :func:`stop`)."""
    command = [sys.executable, "-m", "builder", "serve", "--no-build", "--bundle", str(bundle), "--port", str(port)]
    return subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT if output is not subprocess.DEVNULL else None)


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    bundle = default_bundle()
    if not (bundle / "manifest.json").is_file():
        pytest.fail(f"no bundle at {bundle}: run `.venv/bin/python -m builder build` (make test-e2e does)")
    return bundle


@contextlib.contextmanager
def serving(bundle: Path) -> Iterator[str]:
    """`python -m builder serve` of `bundle` on a free port while in the block; yields its base URL."""
    port = free_port()
    proc = start_serve(bundle, port)
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_http(base + "api/health", proc)
        yield base
    finally:
        stop(proc)


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
    handler = lambda *a, **kw: _PlainStaticHandler(*a, directory=str(out), **kw)  # noqa: E731
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


def launch(pw: Playwright, gpu: bool = False) -> Browser:
    args = BASE_ARGS + (GPU_ARGS if gpu else ["--disable-gpu"])
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)


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
