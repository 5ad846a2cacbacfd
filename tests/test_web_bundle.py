"""builder/serve/web_bundle.py: the worker as one esbuild file, cached by its sources, as serve and site hand it out."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from builder.serve.web_assets import WebLayout
from builder.serve.web_bundle import esbuild_script, source_key, worker_bundle
from conftest import ROOT
from runtime_py.errors import IntentKitError

NODE_MODULES = ROOT / "node_modules"
pytestmark = pytest.mark.skipif(not esbuild_script(NODE_MODULES).is_file() or shutil.which("node") is None,
                                reason="esbuild or Node.js missing (npm ci --ignore-scripts)")

# A static import or a dynamic import of a relative path: what the bundle must not need any more.
RELATIVE_IMPORT = re.compile(r"""(?:\bfrom|\bimport)\s*\(?\s*["']\.{1,2}/""")


@pytest.fixture()
def web(tmp_path: Path) -> Path:
    copy = tmp_path / "web"
    shutil.copytree(ROOT / "web", copy)
    return copy


def test_the_worker_is_one_file_with_no_relative_imports(web: Path, tmp_path: Path) -> None:
    assert RELATIVE_IMPORT.search((web / "worker.js").read_text())  # the source has them
    built = worker_bundle(web, NODE_MODULES, tmp_path / "cache")
    code = built.read_text("utf-8")
    assert not RELATIVE_IMPORT.search(code)
    # everything the worker runs is inside, lazily loaded modules included; names survive for stack traces
    for name in ("JsEngine", "PyodideEngine", "WordPieceTokenizer", "BundleError"):
        assert re.search(rf"\b{name}\b", code), name
    # onnxruntime and Pyodide stay separate files, imported by URL at run time
    assert "../vendor/" in code and "pyodide.mjs" in code


def test_builds_are_cached_by_source_content(web: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = worker_bundle(web, NODE_MODULES, cache)
    stamp = first.stat().st_mtime_ns
    assert worker_bundle(web, NODE_MODULES, cache) == first and first.stat().st_mtime_ns == stamp
    (web / "text.js").write_text((web / "text.js").read_text() + "\n// edited\n")
    (web / "notes.test.js").write_text("// tests do not count\n")
    second = worker_bundle(web, NODE_MODULES, cache)
    assert second != first and second.is_file()
    key = source_key(web, NODE_MODULES)
    (web / "other.test.js").write_text("// still not counted\n")
    assert source_key(web, NODE_MODULES) == key


def test_a_source_that_does_not_parse_is_a_clear_error(web: Path, tmp_path: Path) -> None:
    (web / "text.js").write_text("export function broken( {\n")
    with pytest.raises(IntentKitError, match=r"esbuild could not bundle .*worker\.js[\s\S]*text\.js"):
        worker_bundle(web, NODE_MODULES, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("worker-*.js"))  # nothing half-written is kept


def test_missing_esbuild_is_named(web: Path, tmp_path: Path) -> None:
    with pytest.raises(IntentKitError, match="esbuild is not installed"):
        worker_bundle(web, tmp_path / "node_modules", tmp_path / "cache")
    layout = WebLayout(bundle=tmp_path, web=web, node_modules=tmp_path / "node_modules")
    assert str(esbuild_script(tmp_path / "node_modules")) in layout.missing_assets()
    assert str(esbuild_script(tmp_path / "node_modules")) not in WebLayout(**{**layout.__dict__, "bundle_js": False}).missing_assets()


def test_the_layout_serves_the_bundle_unless_told_not_to(web: Path, tmp_path: Path) -> None:
    layout = WebLayout(bundle=tmp_path, web=web)
    bundled = layout.resolve("/web/worker.js", None)
    assert bundled is not None and bundled.path is not None
    assert not RELATIVE_IMPORT.search(bundled.path.read_text("utf-8"))
    assert bundled.media_type.startswith("text/javascript")
    # the other modules are still there for pages that import them (client.js) and for debugging
    assert layout.resolve("/web/engine.js", None).path == (web / "engine.js").resolve()
    plain = WebLayout(**{**layout.__dict__, "bundle_js": False}).resolve("/web/worker.js", None)
    assert plain is not None and plain.path == (web / "worker.js").resolve()


def test_serve_answers_the_bundle_and_explains_a_failed_build(web: Path, tmp_path: Path, small_bundle: Path) -> None:
    starlette = pytest.importorskip("starlette.testclient")
    from builder.serve.server import create_app
    from runtime_py import Router
    from test_server import make_layout

    (tmp_path / "site").mkdir()
    fake = make_layout(tmp_path / "site", small_bundle)
    layout = WebLayout(**{**fake.__dict__, "web": web, "node_modules": NODE_MODULES})
    client = starlette.TestClient(create_app(layout, Router.from_bundle(small_bundle)))
    response = client.get("/web/worker.js")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/javascript")
    assert not RELATIVE_IMPORT.search(response.text) and "JsEngine" in response.text
    (web / "engine.js").write_text("export class JsEngine {\n")  # an edit that does not parse
    broken = client.get("/web/worker.js")
    assert broken.status_code == 500 and "esbuild could not bundle" in broken.json()["error"]
