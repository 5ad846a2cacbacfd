"""The URL layout shared by ``serve`` and ``site`` (docs/SERVE.md): which URL maps to which file.

Everything either command hands to a browser goes through :meth:`WebLayout.resolve` (serve) or
:meth:`WebLayout.files` (site), both built on the same rules, so the two cannot drift apart:

========================  ===============================================================
URL path                  source
========================  ===============================================================
/, /index.html, /<file>   static/ (files whose type is in :data:`MIME_TYPES`, not *.md)
/web/<file>.js            web/*.js, *.mjs except *.test.js / *.test.mjs; /web/worker.js is the
                          esbuild bundle of web/worker.js and its imports (builder/serve/web_bundle.py)
/vendor/<pkg>/<file>      only the files of :data:`VENDOR` (node_modules)
/bundle/<path>            manifest.json and the files it lists (see :func:`bundle_paths`)
/py/runtime_py.zip        :func:`runtime_zip` of the runtime_py package
/py/<runtime wheel>       runtime_py's wheel, built with python -m build (wheels.py); the Pyodide engine
                          installs it with micropip (vendor/pyodide/micropip-*.whl)
/reference/<file>         serve --reference-model only: the :data:`REFERENCE_FILES` of a transformers.js
                          model folder, which ``bench --tjs-reference`` times transformers.js on
========================  ===============================================================
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from runtime_py.bundle import MANIFEST_NAME, Manifest, TierSpec, read_manifest
from runtime_py.errors import IntentKitError

from .. import paths
from .web_bundle import WORKER, esbuild_script, is_web_module, worker_bundle
from .wheels import MICROPIP_WHEEL, runtime_wheel, runtime_wheel_name

# Headers that make the page cross-origin isolated (threads in onnxruntime-web, precise timers).
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".zip": "application/zip",
    ".whl": "application/zip",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
DEFAULT_MIME = "application/octet-stream"


# What transformers.js reads of a model folder to run it as text classification with dtype "q8".
REFERENCE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model_quantized.onnx")


@dataclass(frozen=True)
class VendorPackage:
    """Files of one npm package that the browser loads, all from one folder of it."""

    folder: str  # relative to node_modules
    files: tuple[str, ...]


VENDOR: dict[str, VendorPackage] = {
    # One ort build per backend (docs: ARCH "transformer.js"); each loads the .mjs/.wasm pair named
    # in it: ort.wasm -> ort-wasm-simd-threaded.*, ort.webgpu -> ort-wasm-simd-threaded.asyncify.*,
    # ort.webgl has no WebAssembly part.
    "ort": VendorPackage(
        "onnxruntime-web/dist",
        (
            "ort.wasm.min.mjs",
            "ort.webgpu.min.mjs",
            "ort.webgl.min.mjs",
            "ort-wasm-simd-threaded.mjs",
            "ort-wasm-simd-threaded.wasm",
            "ort-wasm-simd-threaded.asyncify.mjs",
            "ort-wasm-simd-threaded.asyncify.wasm",
        ),
    ),
    "pyodide": VendorPackage(
        "pyodide",
        # micropip's wheel is not in the npm package: make downloads it from PyPI (wheels.py).
        ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json", MICROPIP_WHEEL),
    ),
    # The browser ES module build; it imports "onnxruntime-web/webgpu" and "onnxruntime-common",
    # which a page maps to vendor/ort/ort.webgpu.min.mjs with an import map.
    "transformers": VendorPackage("@huggingface/transformers/dist", ("transformers.web.min.js",)),
}

# The transformer backends, and the ort files only one of them loads (the rest of VENDOR is always
# served). `site` ships "wasm" alone unless asked (--webgpu, --webgl): the WebGPU build's .wasm is
# 26.8 MB, over the 25 MiB per file of common static hosts, and the WebGL graphs are fp32.
BACKENDS = ("wasm", "webgpu", "webgl")
BACKEND_FILES = {
    "webgpu": frozenset({"ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm"}),
    "webgl": frozenset({"ort.webgl.min.mjs"}),
}

# The benchmark page (`builder bench`) and what only it loads: `site` leaves them out unless --bench.
BENCH_FILES = frozenset({"bench.html", "bench.js", "bench-tjs-worker.js"})
BENCH_VENDOR = "transformers"

RUNTIME_ZIP_URL = "py/runtime_py.zip"
RUNTIME_WHEEL_URL = f"py/{runtime_wheel_name()}"
# Roles a browser never loads: the fused graph runs on native onnxruntime only.
NATIVE_ONLY_ROLES = frozenset({"model_native"})
FP32_ROLES = frozenset({"model_fp32"})
RESERVED = ("api", "web", "vendor", "bundle", "py")

# One path segment: no leading dot (no "..", no dotfiles), nothing but these characters
# (so no backslash, NUL, colon, percent sign left over from double encoding).
_SEGMENT = re.compile(r"[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*")


@dataclass(frozen=True)
class Resolved:
    """A URL path mapped to what answers it. ``path`` is None for the in-memory runtime zip."""

    url: str
    path: Path | None
    media_type: str
    cache: str  # "revalidate" (no-cache + validators) or "vendor" (max-age)


def media_type(name: str) -> str:
    return MIME_TYPES.get(PurePosixPath(name).suffix.lower(), DEFAULT_MIME)


def split_url_path(url_path: str) -> list[str] | None:
    """The segments of a decoded URL path, or None if any segment is not a plain file name."""
    rel = url_path.lstrip("/") if url_path.startswith("/") and not url_path.startswith("//") else None
    if rel is None:
        return None
    if rel == "":
        return ["index.html"]
    parts = rel.split("/")
    if not all(_SEGMENT.fullmatch(part) for part in parts):
        return None
    return parts


def webgl_roles(tier: TierSpec) -> set[str]:
    """The roles of `tier` that only the WebGL backend loads (variants with ``backend: webgl``)."""
    variants = tier.extra.get("variants") or {}
    return {role for role, v in variants.items() if isinstance(v, dict) and v.get("backend") == "webgl"}


def bundle_paths(manifest: Manifest, with_fp32: bool = False, with_webgl: bool = True) -> list[str]:
    """Bundle-relative paths a browser may load: the manifest and its files minus native-only
    roles, unless `with_fp32` the fp32 graph, and unless `with_webgl` the WebGL graphs."""
    skip = NATIVE_ONLY_ROLES | (frozenset() if with_fp32 else FP32_ROLES)
    found = {MANIFEST_NAME}
    for tier in manifest.tiers:
        dropped = skip | (frozenset() if with_webgl else webgl_roles(tier))
        found.update(entry.path for role, entry in tier.files.items() if role not in dropped)
    return sorted(found)


def _static_allowed(parts: list[str]) -> bool:
    return parts[0] not in RESERVED and PurePosixPath(parts[-1]).suffix.lower() in MIME_TYPES


def _web_allowed(parts: list[str]) -> bool:
    return len(parts) == 1 and is_web_module(parts[0])


def _inside(path: Path, root: Path) -> Path | None:
    """`path` resolved (symlinks followed) if it is a regular file under `root`, else None."""
    try:
        real = path.resolve(strict=True)
        real_root = root.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(real_root) or not real.is_file():
        return None
    return real


@dataclass(frozen=True)
class WebLayout:
    """Where each URL prefix reads from. Defaults are the repository's folders."""

    bundle: Path
    static: Path = paths.ROOT / "static"
    web: Path = paths.ROOT / "web"
    node_modules: Path = paths.ROOT / "node_modules"
    runtime_package: Path = paths.ROOT / "runtime_py"
    with_fp32: bool = False
    backends: frozenset[str] = frozenset(BACKENDS)  # the transformer backends whose files are served
    # /web/worker.js is the esbuild bundle of the worker's module graph (builder/serve/web_bundle.py);
    # False serves the source modules as they are (for debugging them).
    bundle_js: bool = True
    bench: bool = True  # the benchmark page and transformers.js (BENCH_FILES, BENCH_VENDOR)
    reference: Path | None = None  # a transformers.js model folder served at /reference/ (bench --tjs-reference)

    def vendor_source(self, package: str, name: str) -> Path:
        return self.node_modules / VENDOR[package].folder / name

    @property
    def bundles_worker(self) -> bool:
        return self.bundle_js and (self.web / WORKER).is_file()

    def worker_file(self) -> Path:
        """The bundled worker (built now if its sources changed); only when `bundles_worker`."""
        return worker_bundle(self.web, self.node_modules)

    @property
    def page(self) -> Path:
        return self.static / "index.html"

    def missing_assets(self) -> list[str]:
        """The whitelisted npm files (and esbuild, when bundling) that are not on disk."""
        esbuild = esbuild_script(self.node_modules)
        missing: list[str] = [str(esbuild)] if self.bundles_worker and not esbuild.is_file() else []
        for package, spec in VENDOR.items():
            for name in spec.files:
                if not self.vendor_source(package, name).is_file():
                    missing.append(str(self.vendor_source(package, name)))
        return missing

    def manifest(self) -> Manifest:
        return read_manifest(self.bundle)

    def resolve(self, url_path: str, manifest: Manifest | None) -> Resolved | None:
        """Map a decoded URL path ("/web/router.js") to a file, or None (answer 404).

        `manifest` is the served bundle's (None if it cannot be read: only its manifest.json, if
        any, is then served). Symlinks are followed only when they stay inside their root. Raises
        IntentKitError when the worker cannot be bundled or runtime_py's wheel cannot be built.
        """
        parts = split_url_path(url_path)
        if parts is None:
            return None
        head, rest = parts[0], parts[1:]
        rel = "/".join(parts)
        if head == "vendor":
            if len(rest) != 2 or rest[0] not in VENDOR or rest[1] not in VENDOR[rest[0]].files:
                return None
            if any(rest[1] in names for backend, names in BACKEND_FILES.items() if backend not in self.backends):
                return None
            if rest[0] == BENCH_VENDOR and not self.bench:
                return None
            root, candidate, cache = self.node_modules / VENDOR[rest[0]].folder, self.vendor_source(*rest), "vendor"
        elif head == "web":
            if not _web_allowed(rest):
                return None
            if self.bundles_worker and rest[0] == WORKER:
                return Resolved(rel, self.worker_file(), media_type(rel), "revalidate")
            root, candidate, cache = self.web, self.web / rest[0], "revalidate"
        elif head == "bundle":
            inner = "/".join(rest)
            allowed = bundle_paths(manifest, self.with_fp32, "webgl" in self.backends) if manifest else [MANIFEST_NAME]
            if inner not in allowed:
                return None
            root, candidate, cache = self.bundle, self.bundle / inner, "revalidate"
        elif head == "reference":
            inner = "/".join(rest)
            if self.reference is None or inner not in REFERENCE_FILES:
                return None
            root, candidate, cache = self.reference, self.reference / inner, "revalidate"
        elif head == "py":
            if rel == RUNTIME_WHEEL_URL:  # revalidated: an edited runtime_py keeps its version number
                return Resolved(rel, runtime_wheel(self.runtime_package), media_type(rel), "revalidate")
            return Resolved(rel, None, media_type(rel), "vendor") if rel == RUNTIME_ZIP_URL else None
        elif _static_allowed(parts) and not rel.lower().endswith(".md") and (self.bench or rel not in BENCH_FILES):
            root, candidate, cache = self.static, self.static.joinpath(*parts), "revalidate"
        else:
            return None
        real = _inside(candidate, root)
        return Resolved(rel, real, media_type(rel), cache) if real else None

    def files(self, manifest: Manifest) -> Iterator[Resolved]:
        """Every file the site folder holds, by URL (not the runtime zip, which no page loads)."""
        candidates: list[str] = []
        for root, prefix in ((self.static, ""), (self.web, "web/")):
            if root.is_dir():
                for path in sorted(root.rglob("*")):
                    if path.is_file():
                        candidates.append(prefix + path.relative_to(root).as_posix())
        candidates += [f"vendor/{package}/{name}" for package, spec in VENDOR.items() for name in spec.files]
        candidates += [f"bundle/{path}" for path in bundle_paths(manifest, self.with_fp32, "webgl" in self.backends)]
        candidates.append(RUNTIME_WHEEL_URL)
        for url in candidates:
            resolved = self.resolve("/" + url, manifest)
            if resolved is not None:
                yield resolved


def require_assets(layout: WebLayout, page: bool = True) -> None:
    """IntentKitError naming what the browser needs but is missing, and how to get it."""
    vendor = layout.missing_assets()
    if vendor:
        more = f" and {len(vendor) - 1} more" if len(vendor) > 1 else ""
        raise IntentKitError(
            f"the browser runtime's npm packages are missing ({vendor[0]}{more}); "
            f"run `npm ci --ignore-scripts` and `python -m builder.serve.wheels` (micropip) in {layout.node_modules.parent}"
        )
    if page and not layout.page.is_file():
        raise IntentKitError(f"{layout.page}: the demo page is missing")


def cache_control(kind: str) -> str:
    return "public, max-age=3600" if kind == "vendor" else "no-cache"


def runtime_zip(package_dir: Path | None = None) -> bytes:
    """A zip of the runtime_py package (top folder ``runtime_py/``: .py files and py.typed) with
    sorted entries and fixed timestamps and modes, so the same sources give the same bytes."""
    package_dir = package_dir or paths.ROOT / "runtime_py"
    if not (package_dir / "__init__.py").is_file():
        raise FileNotFoundError(2, "not a Python package (no __init__.py)", str(package_dir))
    members = sorted(
        p for p in package_dir.rglob("*")
        if p.is_file() and (p.suffix == ".py" or p.name == "py.typed") and "__pycache__" not in p.parts
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in members:
            info = zipfile.ZipInfo(f"{package_dir.name}/{path.relative_to(package_dir).as_posix()}", (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            info.create_system = 3  # Unix, whatever the build machine is
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def headers_file() -> str:
    """``_headers`` for Netlify and Cloudflare Pages: isolation on every path, wasm type, caching."""
    isolation = "".join(f"  {name}: {value}\n" for name, value in ISOLATION_HEADERS.items())
    return (
        "# written by python -m builder site (Netlify / Cloudflare Pages format)\n"
        f"/*\n{isolation}"
        "/*.wasm\n  Content-Type: application/wasm\n"
        "/*.mjs\n  Content-Type: text/javascript; charset=utf-8\n"
        f"/vendor/*\n  Cache-Control: {cache_control('vendor')}\n"
        f"/py/*\n  Cache-Control: {cache_control('vendor')}\n"
    )
