"""`python -m builder site`: the static folder's layout, its _headers file, the whitelist, atomic
replacement, and byte-for-byte equality with what `serve` answers."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import subprocess
import sys
import threading
import urllib.request
import warnings
from pathlib import Path

import pytest

from builder.errors import BuildError
from builder.serve.site import HEADERS_NAME, build_site, format_report, is_site
from builder.serve.web_assets import BENCH_VENDOR, RUNTIME_WHEEL_URL, VENDOR, WebLayout
from builder.serve.wheels import runtime_wheel
from conftest import ROOT
from runtime_py.errors import BundleError, IntentKitError
from test_server import SECRET, make_layout

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from builder.serve.server import create_app  # noqa: E402
from runtime_py import Router  # noqa: E402

EXPECTED_OWN = {
    "index.html", "app.js", "style.css", "logo.png", "img/icon.svg",
    "web/router.js", "web/text.mjs",
    "bundle/manifest.json", "bundle/bow.json", "bundle/onnx/model_quantized.onnx", "bundle/vocab.txt",
    RUNTIME_WHEEL_URL, HEADERS_NAME,
}  # fmt: skip
EXPECTED_VENDOR = {f"vendor/{package}/{name}" for package, spec in VENDOR.items() for name in spec.files if package != BENCH_VENDOR}
# --bench: the benchmark page and transformers.js, which it compares with
EXPECTED_BENCH = {"bench.html"} | {f"vendor/{BENCH_VENDOR}/{name}" for name in VENDOR[BENCH_VENDOR].files}


def listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture(scope="module")
def layout(tmp_path_factory, small_bundle: Path) -> WebLayout:
    """As `site` lays it out by default: without the benchmark page."""
    return dataclasses.replace(make_layout(tmp_path_factory.mktemp("web"), small_bundle), bench=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory, layout: WebLayout) -> Path:
    out = tmp_path_factory.mktemp("out") / "public"
    build_site(layout, out)
    return out


def test_the_site_holds_exactly_the_whitelist(site: Path) -> None:
    assert listing(site) == EXPECTED_OWN | EXPECTED_VENDOR
    assert not any(p.is_symlink() for p in site.rglob("*"))
    for path in site.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_files_are_copies_of_their_sources(site: Path, layout: WebLayout) -> None:
    assert (site / "index.html").read_bytes() == (layout.static / "index.html").read_bytes()
    assert (site / "web/router.js").read_bytes() == (layout.web / "router.js").read_bytes()
    assert (site / "vendor/ort/ort-wasm-simd-threaded.wasm").read_bytes() == layout.vendor_source("ort", "ort-wasm-simd-threaded.wasm").read_bytes()
    assert (site / "bundle/manifest.json").read_bytes() == (layout.bundle / "manifest.json").read_bytes()
    assert (site / RUNTIME_WHEEL_URL).read_bytes() == runtime_wheel(layout.runtime_package).read_bytes()


def test_headers_file(site: Path) -> None:
    text = (site / HEADERS_NAME).read_text()
    blocks: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith((" ", "\t")):
            current = blocks.setdefault(line.strip(), {})
        else:
            name, _, value = line.strip().partition(":")
            assert current is not None
            current[name.strip()] = value.strip()
    assert blocks["/*"] == {
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Embedder-Policy": "require-corp",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    assert blocks["/*.wasm"] == {"Content-Type": "application/wasm"}
    assert blocks["/*.mjs"]["Content-Type"].startswith("text/javascript")
    assert blocks["/vendor/*"] == {"Cache-Control": "public, max-age=3600"}


def test_the_benchmark_page_only_on_request(tmp_path: Path, layout: WebLayout) -> None:
    out = tmp_path / "bench"
    build_site(WebLayout(**{**layout.__dict__, "bench": True}), out)
    assert listing(out) == EXPECTED_OWN | EXPECTED_VENDOR | EXPECTED_BENCH


def test_fp32_only_on_request(tmp_path: Path, layout: WebLayout) -> None:
    out = tmp_path / "wide"
    build_site(WebLayout(**{**layout.__dict__, "with_fp32": True}), out)
    assert listing(out) == EXPECTED_OWN | EXPECTED_VENDOR | {"bundle/onnx/model.onnx"}


def test_a_plain_static_server_gives_the_same_bytes_as_serve(site: Path, layout: WebLayout, small_bundle: Path) -> None:
    """Every file of the site, fetched from http.server, equals what `serve` answers at that URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    served = TestClient(create_app(layout, Router.from_bundle(small_bundle)))
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}/"
        for rel in sorted(listing(site) - {HEADERS_NAME}):
            with urllib.request.urlopen(base + rel) as answer:
                static_bytes = answer.read()
            assert static_bytes == (site / rel).read_bytes(), rel
            from_serve = served.get("/" + rel)
            assert from_serve.status_code == 200 and from_serve.content == static_bytes, rel
        with urllib.request.urlopen(base) as answer:
            assert answer.read() == served.get("/").content
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_refuses_a_foreign_folder_without_force(tmp_path: Path, layout: WebLayout) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(BuildError, match="--force"):
        build_site(layout, out)
    assert listing(out) == {"thesis.tex"}
    (out / HEADERS_NAME).write_text("/*\n  X-Frame-Options: DENY\n")  # someone else's _headers
    with pytest.raises(BuildError):
        build_site(layout, out)
    build_site(layout, out, force=True)
    assert is_site(out) and "thesis.tex" not in listing(out)


def test_rewrites_its_own_site_and_an_empty_folder(tmp_path: Path, layout: WebLayout) -> None:
    out = tmp_path / "again"
    out.mkdir()
    build_site(layout, out)
    (out / "stale.js").write_text("old")
    build_site(layout, out)
    assert "stale.js" not in listing(out)


def test_never_replaces_a_source_folder(tmp_path: Path, layout: WebLayout) -> None:
    for target in (layout.bundle, layout.bundle.parent, layout.static):
        with pytest.raises(BuildError, match="refusing"):
            build_site(layout, target, force=True)
    assert (layout.static / "index.html").exists() and (layout.bundle / "manifest.json").exists()


def test_a_corrupt_bundle_file_leaves_the_old_site(tmp_path: Path, small_bundle: Path) -> None:
    (tmp_path / "src").mkdir()
    layout = make_layout(tmp_path / "src", small_bundle)
    out = tmp_path / "public"
    build_site(layout, out)
    before = {rel: (out / rel).read_bytes() for rel in listing(out)}
    (layout.bundle / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\nhellO\n")  # same size, other bytes
    with pytest.raises(BundleError, match="vocab.txt"):
        build_site(layout, out)
    assert {rel: (out / rel).read_bytes() for rel in listing(out)} == before
    (layout.bundle / "vocab.txt").unlink()
    with pytest.raises(BundleError, match="missing"):
        build_site(layout, out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".public.")]  # no staging folder left


def test_missing_npm_packages_or_page_are_named(tmp_path: Path, layout: WebLayout) -> None:
    empty = WebLayout(**{**layout.__dict__, "node_modules": tmp_path / "node_modules"})
    with pytest.raises(IntentKitError, match="npm ci --ignore-scripts"):
        build_site(empty, tmp_path / "out")
    no_page = WebLayout(**{**layout.__dict__, "static": tmp_path / "static"})
    with pytest.raises(IntentKitError, match="demo page is missing"):
        build_site(no_page, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_report_table(site: Path) -> None:
    from builder.serve.site import SiteReport

    files = sorted(((p.relative_to(site).as_posix(), p.stat().st_size) for p in site.rglob("*") if p.is_file()), key=lambda f: -f[1])
    text = format_report(SiteReport(site, files), top=3)
    lines = text.splitlines()
    assert lines[0].startswith(f"wrote {site}/: {len(files)} files, ")
    assert files[0][0] in lines[3] and files[2][0] in lines[5]
    assert lines[6].startswith(f"... {len(files) - 3} more")


def test_site_command(tmp_path: Path, small_bundle: Path) -> None:
    real = WebLayout(bundle=small_bundle)
    if real.missing_assets() or not real.page.is_file():
        pytest.skip("static/index.html or node_modules missing in this checkout")
    out = tmp_path / "public"
    done = subprocess.run([sys.executable, "-m", "builder", "site", "--bundle", str(small_bundle), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "vendor/ort/ort-wasm-simd-threaded.wasm" in done.stdout
    manifest = json.loads((out / "bundle/manifest.json").read_text())
    assert manifest["tiers"][0]["name"] == "bow"
    # the worker ships as one esbuild file; the page's own modules stay as they are
    worker = (out / "web/worker.js").read_text()
    assert "var JsEngine" in worker and 'from "./' not in worker and "import" in (out / "web/client.js").read_text()
    plain = tmp_path / "plain"
    done = subprocess.run([sys.executable, "-m", "builder", "site", "--bundle", str(small_bundle), "--out", str(plain), "--no-bundle-js"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and (plain / "web/worker.js").read_text() == (ROOT / "web/worker.js").read_text()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    again = subprocess.run([sys.executable, "-m", "builder", "site", "--bundle", str(small_bundle), "--out", str(foreign)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "refusing" in again.stderr and "Traceback" not in again.stderr
    assert listing(foreign) == {"keep.txt"}
