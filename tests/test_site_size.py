"""What `site` ships by default (the WASM backend only), the opt-in backends, and the per-file
size limit static hosts impose (builder/serve/site.py)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from builder.errors import BuildError
from builder.serve.site import build_site
from builder.serve.web_assets import BACKEND_FILES, WebLayout
from conftest import ROOT
from runtime_py.bundle import read_manifest
from test_server import _add_file, make_layout

WEBGL_GRAPH = "onnx/model_webgl_16.onnx"


@pytest.fixture(scope="module")
def layout(tmp_path_factory, small_bundle: Path) -> WebLayout:
    """The fake web tree, its bundle given a WebGL graph (a role whose variant says backend webgl)."""
    layout = make_layout(tmp_path_factory.mktemp("web"), small_bundle)
    manifest = json.loads((layout.bundle / "manifest.json").read_text())
    _add_file(layout.bundle, manifest, "extra", "model_webgl_16", WEBGL_GRAPH, b"webgl graph" * 100)
    _add_file(layout.bundle, manifest, "extra", "model", "onnx/model_quantized.onnx", b"int8 graph" * 200_000)  # the biggest file
    extra = next(t for t in manifest["tiers"] if t["name"] == "extra")
    extra["variants"] = {"model_webgl_16": {"precision": "fp32", "backend": "webgl", "pad_length": 16}, "model": {"precision": "int8"}}
    (layout.bundle / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return layout


def shipped(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_by_default_only_the_wasm_backend_ships(tmp_path: Path, layout: WebLayout) -> None:
    out = tmp_path / "site"
    build_site(dataclasses.replace(layout, backends=frozenset({"wasm"})), out)
    files = shipped(out)
    assert f"bundle/{WEBGL_GRAPH}" not in files and "bundle/onnx/model_quantized.onnx" in files
    assert not {f"vendor/ort/{name}" for names in BACKEND_FILES.values() for name in names} & files
    assert "vendor/ort/ort.wasm.min.mjs" in files and "vendor/ort/ort-wasm-simd-threaded.wasm" in files
    site_manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    extra = next(t for t in site_manifest["tiers"] if t["name"] == "extra")
    assert "model_webgl_16" not in extra["files"] and "model_webgl_16" not in extra["variants"]
    assert "model" in extra["files"] and "model" in extra["variants"]
    read_manifest(out / "bundle")  # still a valid manifest; the bundle's own is untouched
    assert "model_webgl_16" in json.loads((layout.bundle / "manifest.json").read_text())["tiers"][-1]["files"]


def test_webgl_and_webgpu_on_request(tmp_path: Path, layout: WebLayout) -> None:
    out = tmp_path / "site"
    build_site(layout, out)  # every backend
    files = shipped(out)
    assert f"bundle/{WEBGL_GRAPH}" in files and "vendor/ort/ort-wasm-simd-threaded.asyncify.wasm" in files
    assert (out / "bundle" / "manifest.json").read_bytes() == (layout.bundle / "manifest.json").read_bytes()


def test_a_file_over_the_limit_is_named_and_nothing_is_written(tmp_path: Path, layout: WebLayout) -> None:
    out = tmp_path / "site"
    big = layout.bundle / "onnx" / "model_quantized.onnx"
    limit_mib = (big.stat().st_size - 1) / (1 << 20)
    with pytest.raises(BuildError, match=r"bundle/onnx/model_quantized\.onnx: .* MiB is over --max-file-mb"):
        build_site(layout, out, max_file_mib=limit_mib)
    assert not out.exists()
    build_site(layout, out, max_file_mib=big.stat().st_size / (1 << 20))  # exactly at the limit is fine


def test_site_command_flags(tmp_path: Path, small_bundle: Path) -> None:
    """The real npm files: the default site has no file over 25 MiB; asking for WebGPU names the
    file that is over (onnxruntime-web's asyncify build)."""
    if not (ROOT / "node_modules" / "onnxruntime-web").is_dir():
        pytest.skip("needs the npm packages (make node_modules/.installed)")
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "builder", "site", "--bundle", str(small_bundle), "--out", str(tmp_path / "site"), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    done = run()
    assert done.returncode == 0, done.stderr
    assert max(p.stat().st_size for p in (tmp_path / "site").rglob("*") if p.is_file()) <= 25 << 20
    refused = run("--webgpu")
    assert refused.returncode != 0 and "ort-wasm-simd-threaded.asyncify.wasm" in refused.stderr and "Traceback" not in refused.stderr
    assert run("--webgpu", "--max-file-mb", "30").returncode == 0
