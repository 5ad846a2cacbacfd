"""The two wheels the Pyodide engine installs from our own origin (docs/SERVE.md, "Pyodide").

* runtime_py's wheel (the ``edge-intent-runtime`` distribution, runtime_py/pyproject.toml), built with
  ``python -m build`` (no isolation: the environment's setuptools, nothing downloaded) and cached by
  the content of its sources, as the worker bundle is (web_bundle.py): an edited module is rebuilt on
  the next request. ``SOURCE_DATE_EPOCH`` makes the same sources give the same bytes.
* micropip's wheel. Pyodide from npm ships no packages, micropip included, so ``make`` downloads the
  version named in Pyodide's lock file from PyPI into ``node_modules/pyodide/`` (``python -m
  builder.serve.wheels``), where ``loadPackage("micropip")`` finds it as it would on Pyodide's CDN.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from runtime_py import __version__ as RUNTIME_VERSION
from runtime_py.errors import IntentKitError

from .. import paths

RUNTIME_DISTRIBUTION = "edge-intent-runtime"
# Pyodide 314.0.7's pyodide-lock.json names this file (tests/test_packages.py checks it still does).
MICROPIP_WHEEL = "micropip-0.11.1-py3-none-any.whl"
BUILD_TIMEOUT_S = 300.0
# 1980-01-01, the earliest time a zip can hold.
SOURCE_DATE_EPOCH = "315532800"
_build_lock = threading.Lock()


def runtime_wheel_name(version: str = RUNTIME_VERSION) -> str:
    """The file name `python -m build` gives runtime_py's wheel."""
    return f"{RUNTIME_DISTRIBUTION.replace('-', '_')}-{version}-py3-none-any.whl"


def _sources(package_dir: Path) -> list[Path]:
    return sorted(
        p for p in package_dir.iterdir()
        if p.is_file() and (p.suffix == ".py" or p.name in ("py.typed", "pyproject.toml", "README.md"))
    )


def source_key(package_dir: Path) -> str:
    """A hash of what goes into the wheel: the package's modules and its project files."""
    digest = hashlib.sha256()
    for path in _sources(package_dir):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """Where built wheels are kept between runs (per user, outside the repository)."""
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"edge-intent-kit-py-{user}"


def build_distributions(project: Path, out: Path, timeout: float = BUILD_TIMEOUT_S) -> list[Path]:
    """``python -m build --no-isolation`` of `project` (an sdist, then the wheel from it) into `out`."""
    if not (project / "pyproject.toml").is_file():
        raise IntentKitError(f"{project}: no pyproject.toml to build")
    env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(project)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise IntentKitError(f"python -m build did not finish building {project} in {timeout:.0f} s") from exc
    if proc.returncode != 0:
        detail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        if "No module named build" in detail:
            detail = "the `build` package is missing: pip install build setuptools (make installs them)"
        raise IntentKitError(f"python -m build could not build {project}:\n{detail}")
    return sorted(out.iterdir())


def runtime_wheel(package_dir: Path | None = None, cache: Path | None = None) -> Path:
    """runtime_py's wheel for the sources in `package_dir`, built now if they changed since the last build."""
    package_dir = package_dir or paths.ROOT / "runtime_py"
    cache = cache or cache_dir()
    folder = cache / f"runtime-{source_key(package_dir)}"
    with _build_lock:  # one build at a time: they write the same egg-info folder
        built = sorted(folder.glob("*.whl")) if folder.is_dir() else []
        if built:
            return built[0]
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix="build-") as tmp:
            wheels = [p for p in build_distributions(package_dir, Path(tmp) / "dist") if p.suffix == ".whl"]
            if len(wheels) != 1:
                raise IntentKitError(f"python -m build wrote {len(wheels)} wheels for {package_dir}, expected one")
            staged = Path(tmp) / "out"
            staged.mkdir()
            os.replace(wheels[0], staged / wheels[0].name)
            try:
                os.replace(staged, folder)  # atomic: a reader sees no folder or the whole one
            except OSError:
                if not (folder / wheels[0].name).is_file():  # else another process built it first
                    raise
        for stale in cache.glob("runtime-*"):  # builds of other sources, untouched for a day
            if stale != folder and stale.stat().st_mtime < time.time() - 86400:
                shutil.rmtree(stale, ignore_errors=True)
        return folder / wheels[0].name


def _pyodide_lock(node_modules: Path) -> tuple[str, str]:
    """(micropip's version, Pyodide's Python as "3.14") from the installed Pyodide's lock file."""
    lock = node_modules / "pyodide" / "pyodide-lock.json"
    try:
        data = json.loads(lock.read_text("utf-8"))
        python = ".".join(str(data["info"]["python"]).split(".")[:2])
        return str(data["packages"]["micropip"]["version"]), python
    except (OSError, ValueError, KeyError) as exc:
        raise IntentKitError(f"{lock}: cannot read micropip's version ({exc}); run `npm ci --ignore-scripts`") from exc


def fetch_micropip(node_modules: Path | None = None) -> Path:
    """Download micropip's wheel from PyPI into Pyodide's folder, unless it is there already."""
    node_modules = node_modules or paths.ROOT / "node_modules"
    target = node_modules / "pyodide" / MICROPIP_WHEEL
    if target.is_file():
        return target
    version, python = _pyodide_lock(node_modules)
    if not MICROPIP_WHEEL.startswith(f"micropip-{version}-"):
        raise IntentKitError(f"Pyodide's lock file names micropip {version}: set MICROPIP_WHEEL in {__file__} to match")
    # Recent micropip releases require Pyodide's Python, not this one: ask for a wheel for that one.
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
               "--only-binary=:all:", "--python-version", python, "--dest", str(target.parent), f"micropip=={version}"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    if proc.returncode != 0 or not target.is_file():
        raise IntentKitError(f"could not download {MICROPIP_WHEEL} from PyPI:\n{(proc.stderr or proc.stdout).strip()}")
    return target


if __name__ == "__main__":
    try:
        print(fetch_micropip())
    except IntentKitError as exc:
        sys.exit(f"error: {exc}")
