"""The inference worker as one JavaScript file: web/worker.js and every module it imports, bundled
by esbuild (npm, pinned in package.json).

``serve`` and ``site`` hand this file to browsers at ``/web/worker.js`` instead of the source module
graph. A module worker discovers its imports one level at a time (worker.js -> engine.js -> bow.js ->
features.js -> pyregex.js), a round trip per level, before it can even ask for the bundle's manifest;
one file takes that wait off the first answer (docs/BENCHMARKS.md, "First answer").

Whitespace and syntax are minified, identifiers are not, so stack traces stay readable. Dynamic
imports of web/ modules (transformer.js) are inlined and evaluated only when first imported; the
onnxruntime and Pyodide builds are imported by URL at run time and stay separate files.

Builds are cached by the content of web/'s sources and esbuild's version, so an edited source is
rebuilt on the next request and an unchanged one never is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from runtime_py.errors import IntentKitError

WORKER = "worker.js"
_TEST_FILE = re.compile(r"\.test\.m?js$")
ESBUILD_OPTIONS = ("--bundle", "--format=esm", "--target=es2022", "--minify-whitespace", "--minify-syntax",
                   "--legal-comments=none", "--log-level=error")
BUILD_TIMEOUT_S = 120.0


def is_web_module(name: str) -> bool:
    """A browser module of web/ (not a test)."""
    return name.endswith((".js", ".mjs")) and not _TEST_FILE.search(name)


def esbuild_script(node_modules: Path) -> Path:
    """esbuild's launcher (a Node script that runs the platform binary; no install script needed)."""
    return node_modules / "esbuild" / "bin" / "esbuild"


def _esbuild_version(node_modules: Path) -> str:
    try:
        return str(json.loads((node_modules / "esbuild" / "package.json").read_text("utf-8"))["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise IntentKitError(f"{node_modules / 'esbuild'}: esbuild is not installed ({exc}); run `npm ci --ignore-scripts`") from exc


def source_key(web: Path, node_modules: Path) -> str:
    """A hash of every module the browser may load from `web` (tests excluded) and esbuild's version."""
    digest = hashlib.sha256(_esbuild_version(node_modules).encode())
    for path in sorted(web.iterdir()):
        if path.is_file() and is_web_module(path.name):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """Where built bundles are kept between runs (per user, outside the repository)."""
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"edge-intent-kit-js-{user}"


def worker_bundle(web: Path, node_modules: Path, cache: Path | None = None) -> Path:
    """The bundled worker for the sources in `web`, built now if this version is not cached yet."""
    entry = web / WORKER
    if not entry.is_file():
        raise IntentKitError(f"{entry}: the worker's source is missing")
    cache = cache or cache_dir()
    out = cache / f"worker-{source_key(web, node_modules)}.js"
    if out.is_file():
        return out
    node = shutil.which("node")
    script = esbuild_script(node_modules)
    if node is None:
        raise IntentKitError("bundling web/worker.js needs Node.js on PATH (`make node` installs it)")
    if not script.is_file():
        raise IntentKitError(f"{script}: esbuild is not installed; run `npm ci --ignore-scripts` in {node_modules.parent}")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="build-") as tmp:
        built = Path(tmp) / WORKER
        try:
            proc = subprocess.run([node, str(script), str(entry), *ESBUILD_OPTIONS, f"--outfile={built}"],
                                  capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise IntentKitError(f"esbuild did not finish bundling {entry} in {BUILD_TIMEOUT_S:.0f} s") from exc
        if proc.returncode != 0 or not built.is_file():
            detail = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
            raise IntentKitError(f"esbuild could not bundle {entry}:\n{detail}")
        os.replace(built, out)  # atomic: a concurrent request sees the old file or the whole new one
    for stale in cache.glob("worker-*.js"):  # builds of other sources, untouched for a day
        if stale != out and stale.stat().st_mtime < time.time() - 86400:
            stale.unlink(missing_ok=True)
    return out
