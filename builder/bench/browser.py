"""Chromium under Playwright against `python -m builder serve`: the launch flags for this kind of
machine and a served bundle on a free loopback port. Shared by `builder bench`, the benchmark
scripts and the browser tests (e2e/)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..paths import ROOT

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
# WebGPU and WebGL need a GPU process; without a GPU both run on SwiftShader, the software adapter.
GPU_ARGS = ["--enable-unsafe-webgpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


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


def start_serve(bundle: Path, port: int, output: Any = subprocess.DEVNULL, extra: Sequence[str] = ()) -> subprocess.Popen:
    """`python -m builder serve --no-build` on 127.0.0.1:`port` (stop it with :func:`stop`)."""
    command = [sys.executable, "-m", "builder", "serve", "--no-build", "--bundle", str(bundle), "--port", str(port), *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT if output is not subprocess.DEVNULL else None)


@contextlib.contextmanager
def serving(bundle: Path, extra: Sequence[str] = ()) -> Iterator[str]:
    """`python -m builder serve` of `bundle` on a free port while in the block; yields its base URL."""
    port = free_port()
    proc = start_serve(bundle, port, extra=extra)
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_http(base + "api/health", proc)
        yield base
    finally:
        stop(proc)


def launch(pw: Any, gpu: bool = False) -> Any:
    """Debian's Chromium, headless; with `gpu`, WebGPU and WebGL enabled (on SwiftShader here)."""
    if not Path(CHROMIUM).exists():
        from runtime_py.errors import IntentKitError

        raise IntentKitError(f"{CHROMIUM} not found: install Debian's chromium (make chromium) or set INTENT_CHROMIUM")
    args = BASE_ARGS + (GPU_ARGS if gpu else ["--disable-gpu"])
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
