"""`python -m builder serve`: the URL layout, headers, refusals and the JSON API (Starlette TestClient,
plus a real uvicorn for the paths an HTTP client would normalise away)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
import zipfile
from pathlib import Path

import pytest

with warnings.catch_warnings():  # Starlette 1.10 asks for httpx2; httpx (installed) still works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from builder.serve import server
from builder.serve.server import MAX_BATCH, MAX_BODY_BYTES, create_app
from builder.serve.web_assets import RUNTIME_WHEEL_URL, VENDOR, WebLayout, runtime_zip
from conftest import ROOT
from runtime_py import Router
from runtime_py.errors import IntentKitError

SECRET = "TOP-SECRET-CONTENT"
ISOLATION = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-resource-policy": "same-origin",
}


def _add_file(bundle: Path, manifest: dict, tier: str, role: str, rel: str, data: bytes) -> None:
    (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
    (bundle / rel).write_bytes(data)
    entry = {"path": rel, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    next(t for t in manifest["tiers"] if t["name"] == tier)["files"][role] = entry


def make_layout(root: Path, small_bundle: Path, with_fp32: bool = False) -> WebLayout:
    """A complete fake web tree under `root`: static/, web/, node_modules/ (every whitelisted vendor
    file plus files that must not be served), a copy of the small bundle with an extra tier whose
    files cover the roles a browser does and does not load, and a secret outside every root."""
    (root / "secret.txt").write_text(SECRET)
    static = root / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>demo</title><script type=module src=app.js></script>")
    (static / "app.js").write_text("import './web/router.js';\n")
    (static / "style.css").write_text("body { margin: 0 }\n")
    (static / "bench.html").write_text("<!doctype html><title>bench</title>")
    (static / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (static / "README.md").write_text("notes for developers\n")
    (static / ".env").write_text(SECRET)
    (static / "notes.bak").write_text(SECRET)
    (static / "img").mkdir()
    (static / "img" / "icon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    os.symlink(root / "secret.txt", static / "leak.txt")
    web = root / "web"
    web.mkdir()
    (web / "router.js").write_text("export const answer = 42;\n")
    (web / "text.mjs").write_text("export const t = 1;\n")
    (web / "router.test.js").write_text(SECRET)
    (web / ".hidden.js").write_text(SECRET)
    (web / "package.json").write_text("{}")
    os.symlink(root / "secret.txt", web / "leak.js")
    modules = root / "node_modules"
    for package, spec in VENDOR.items():
        folder = modules / spec.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name in spec.files:
            (folder / name).write_bytes(f"{package}/{name}\n".encode() * 50)
    (modules / "onnxruntime-web" / "dist" / "ort.all.min.mjs").write_text(SECRET)
    (modules / "onnxruntime-web" / "package.json").write_text(SECRET)
    (modules / "pyodide" / "pyodide.js.map").write_text(SECRET)
    bundle = root / "bundle"
    shutil.copytree(small_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["tiers"].append({"name": "extra", "kind": "never-loaded", "files": {}})
    _add_file(bundle, manifest, "extra", "model", "onnx/model_quantized.onnx", b"int8 graph" * 200)
    _add_file(bundle, manifest, "extra", "model_fp32", "onnx/model.onnx", b"fp32 graph" * 400)
    _add_file(bundle, manifest, "extra", "model_native", "onnx/model_native_int8.onnx", b"native graph" * 100)
    _add_file(bundle, manifest, "extra", "vocab", "vocab.txt", b"[PAD]\n[UNK]\nhello\n")
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (bundle / "unlisted.json").write_text(SECRET)
    return WebLayout(bundle=bundle, static=static, web=web, node_modules=modules, runtime_package=ROOT / "runtime_py", with_fp32=with_fp32)


@pytest.fixture(scope="module")
def router(small_bundle: Path) -> Router:
    return Router.from_bundle(small_bundle, strict=True)


@pytest.fixture(scope="module")
def layout(tmp_path_factory, small_bundle: Path) -> WebLayout:
    return make_layout(tmp_path_factory.mktemp("web"), small_bundle)


@pytest.fixture(scope="module")
def client(layout: WebLayout, router: Router) -> TestClient:
    return TestClient(create_app(layout, router))


def assert_isolated(response) -> None:
    for name, value in ISOLATION.items():
        assert response.headers.get(name) == value, (response.request.url, name, dict(response.headers))


# ---------------------------------------------------------------- files


@pytest.mark.parametrize(
    "url, mime",
    [
        ("/", "text/html"),
        ("/index.html", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/logo.png", "image/png"),
        ("/img/icon.svg", "image/svg+xml"),
        ("/web/router.js", "text/javascript"),
        ("/web/text.mjs", "text/javascript"),
        ("/vendor/ort/ort.wasm.min.mjs", "text/javascript"),
        ("/vendor/ort/ort-wasm-simd-threaded.wasm", "application/wasm"),
        ("/vendor/ort/ort-wasm-simd-threaded.asyncify.wasm", "application/wasm"),
        ("/vendor/pyodide/pyodide.asm.wasm", "application/wasm"),
        ("/vendor/pyodide/python_stdlib.zip", "application/zip"),
        ("/vendor/pyodide/pyodide-lock.json", "application/json"),
        ("/vendor/transformers/transformers.web.min.js", "text/javascript"),
        ("/bundle/manifest.json", "application/json"),
        ("/bundle/bow.json", "application/json"),
        ("/bundle/onnx/model_quantized.onnx", "application/octet-stream"),
        ("/bundle/vocab.txt", "text/plain"),
        ("/py/runtime_py.zip", "application/zip"),
        ("/" + RUNTIME_WHEEL_URL, "application/zip"),
    ],
)
def test_files_are_served_with_their_mime_type(client: TestClient, layout: WebLayout, url: str, mime: str) -> None:
    response = client.get(url)
    assert response.status_code == 200, url
    assert response.headers["content-type"].split(";")[0] == mime
    assert response.headers["x-content-type-options"] == "nosniff"
    assert_isolated(response)
    resolved = layout.resolve(url, layout.manifest())
    expected = resolved.path.read_bytes() if resolved.path else runtime_zip(layout.runtime_package)
    assert response.content == expected


@pytest.mark.parametrize(
    "url",
    [
        "/README.md",  # developer notes in static/
        "/.env",  # dotfiles
        "/notes.bak",  # a type the page never uses
        "/web/router.test.js",  # tests
        "/web/.hidden.js",
        "/web/package.json",
        "/web/",
        "/vendor/ort/ort.all.min.mjs",  # in the package, not in the whitelist
        "/vendor/ort/",
        "/vendor/onnxruntime-web/package.json",
        "/vendor/pyodide/pyodide.js.map",
        "/vendor/unknown/x.js",
        "/bundle/unlisted.json",  # in the bundle folder, not in the manifest
        "/bundle/onnx/model.onnx",  # fp32: only with --with-fp32
        "/bundle/onnx/model_native_int8.onnx",  # native onnxruntime only
        "/bundle/",
        "/py/other.zip",
        "/static/index.html",  # static/ is the root, not a prefix
        "/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs",
        "/leak.txt",  # symlink out of static/
        "/web/leak.js",  # symlink out of web/
        "/nothing-here.js",
    ],
)
def test_what_is_not_served(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404, url
    assert SECRET not in response.text
    assert response.json() == {"error": "Not Found"}
    assert_isolated(response)


def test_fp32_graph_only_with_the_option(layout: WebLayout, router: Router) -> None:
    wide = TestClient(create_app(WebLayout(**{**layout.__dict__, "with_fp32": True}), router))
    assert wide.get("/bundle/onnx/model.onnx").content == (layout.bundle / "onnx/model.onnx").read_bytes()
    assert wide.get("/bundle/onnx/model_native_int8.onnx").status_code == 404


def test_reference_model_only_with_the_option_and_only_its_files(layout: WebLayout, router: Router, client: TestClient, tmp_path: Path) -> None:
    model = tmp_path / "reference"
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model_quantized.onnx", "onnx/model.onnx", "secret.txt"):
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_text(name)
    assert client.get("/reference/config.json").status_code == 404
    wide = TestClient(create_app(WebLayout(**{**layout.__dict__, "reference": model}), router))
    assert wide.get("/reference/onnx/model_quantized.onnx").text == "onnx/model_quantized.onnx"
    assert wide.get("/reference/tokenizer.json").text == "tokenizer.json"
    for other in ("/reference/onnx/model.onnx", "/reference/secret.txt", "/reference/../reference/secret.txt"):
        assert wide.get(other).status_code == 404, other


def test_cache_headers(client: TestClient) -> None:
    for url in ("/", "/index.html", "/bundle/manifest.json", "/web/router.js"):
        assert client.get(url).headers["cache-control"] == "no-cache", url
    bundle_file = client.get("/bundle/bow.json")
    assert bundle_file.headers["cache-control"] == "no-cache"
    assert bundle_file.headers["etag"] and bundle_file.headers["last-modified"]
    for url in ("/vendor/ort/ort-wasm-simd-threaded.wasm", "/vendor/pyodide/pyodide.mjs", "/py/runtime_py.zip"):
        assert client.get(url).headers["cache-control"] == "public, max-age=3600", url
    assert client.get("/py/runtime_py.zip").headers["etag"]


@pytest.mark.parametrize("url", ["/bundle/bow.json", "/bundle/manifest.json", "/index.html", "/vendor/ort/ort.wasm.min.mjs", "/py/runtime_py.zip"])
def test_revalidation_gives_304(client: TestClient, url: str) -> None:
    first = client.get(url)
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["cache-control"] == first.headers["cache-control"]
    assert_isolated(again)
    assert client.get(url, headers={"If-None-Match": '"something-else"'}).status_code == 200
    if "last-modified" in first.headers:
        since = client.get(url, headers={"If-Modified-Since": first.headers["last-modified"]})
        assert since.status_code == 304
        assert client.get(url, headers={"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"}).status_code == 200


def test_a_changed_file_gets_a_new_etag(tmp_path: Path, small_bundle: Path, router: Router) -> None:
    layout = make_layout(tmp_path, small_bundle)
    client = TestClient(create_app(layout, router))
    before = client.get("/web/router.js").headers["etag"]
    target = layout.web / "router.js"
    target.write_text("export const answer = 43;\n")
    os.utime(target, (time.time() + 5, time.time() + 5))
    changed = client.get("/web/router.js", headers={"If-None-Match": before})
    assert changed.status_code == 200 and changed.text == "export const answer = 43;\n"
    assert changed.headers["etag"] != before


def test_head_and_range(client: TestClient, layout: WebLayout) -> None:
    wasm = (layout.node_modules / "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm").read_bytes()
    head = client.head("/vendor/ort/ort-wasm-simd-threaded.wasm", headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) == len(wasm)
    assert_isolated(head)
    part = client.get("/vendor/ort/ort-wasm-simd-threaded.wasm", headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == wasm[5:15]
    assert part.headers["content-range"] == f"bytes 5-14/{len(wasm)}"


def test_a_rebuilt_bundle_is_picked_up(tmp_path: Path, small_bundle: Path, router: Router) -> None:
    layout = make_layout(tmp_path, small_bundle)
    client = TestClient(create_app(layout, router))
    assert client.get("/bundle/vocab.txt").status_code == 200
    manifest = json.loads((layout.bundle / "manifest.json").read_text())
    manifest["tiers"] = [t for t in manifest["tiers"] if t["name"] != "extra"]
    (layout.bundle / "manifest.json").write_text(json.dumps(manifest))
    assert client.get("/bundle/vocab.txt").status_code == 404
    (layout.bundle / "manifest.json").write_text("{not json")
    assert client.get("/bundle/manifest.json").status_code == 200  # served as is: the page reports it
    assert client.get("/bundle/bow.json").status_code == 404


# ---------------------------------------------------------------- refusing paths

# Raw request targets, as an attacker would send them; uvicorn percent-decodes them once.
NASTY_PATHS = [
    "/../secret.txt",
    "/web/../../secret.txt",
    "/vendor/ort/../../../secret.txt",
    "/bundle/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/%2E%2E/secret.txt",
    "/web/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/bundle/..%2f..%2fsecret.txt",
    "/web/..%5c..%5csecret.txt",
    "/%252e%252e/secret.txt",
    "/%252e%252e%252fsecret.txt",
    "/web\\..\\..\\secret.txt",
    "/..\\secret.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/vendor/ort/%2fetc%2fpasswd",
    "/index.html%00.js",
    "/web/router.js%00",
    "/./index.html",
    "/web/./router.js",
    "/bundle/./manifest.json",
    "/leak.txt",
    "/web/leak.js",
    "/.env",
    "/%2eenv",
    "/vendor/pyodide/..%2f..%2f..%2fsecret.txt",
    "/bundle/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/py/..%2f..%2fsecret.txt",
    "/C:%5cWindows%5cwin.ini",
]


@pytest.fixture(scope="module")
def live(layout: WebLayout, router: Router):
    """The app on a real uvicorn in a thread (no signal handlers there); yields (host, port)."""
    import uvicorn

    sock = server.bind("127.0.0.1", 0)
    instance = uvicorn.Server(uvicorn.Config(create_app(layout, router), log_level="error", lifespan="off"))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.started
    yield sock.getsockname()[:2]
    instance.should_exit = True
    thread.join(10)
    sock.close()


def raw_get(address: tuple[str, int], target: str) -> tuple[int, dict[str, str], bytes]:
    """Send `target` byte for byte (no client-side normalisation) and read the whole answer."""
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("target", NASTY_PATHS)
def test_paths_outside_the_layout_are_refused(live, target: str) -> None:
    status, headers, body = raw_get(live, target)
    assert status in (400, 404), (target, status, body[:200])
    assert SECRET.encode() not in body and b"root:" not in body
    if status == 404:  # answered by the app (uvicorn itself may refuse a malformed request line)
        assert all(headers.get(k) == v for k, v in ISOLATION.items()), headers


def test_a_plain_request_on_the_live_server(live) -> None:
    status, headers, body = raw_get(live, "/web/router.js")
    assert status == 200 and body == b"export const answer = 42;\n"
    assert headers["content-type"].startswith("text/javascript")


# ---------------------------------------------------------------- the API


def test_classify_one_text(client: TestClient, router: Router) -> None:
    text = "how many shares of AAPL do I own"
    response = client.post("/api/classify", json={"text": text})
    assert response.status_code == 200
    assert_isolated(response)
    got, want = response.json(), router.classify(text).to_dict()
    for result in (got, want):
        result.pop("latency_ms")
        for tier in result["tiers"]:
            tier.pop("latency_ms")
    assert got == want
    assert got["intent"] == "positions" and got["slots"] == {"SYMBOL": ["AAPL"]}


def test_classify_a_batch(client: TestClient, router: Router) -> None:
    texts = ["price of nvda", "what is my cash balance", "", "x" * 10]
    response = client.post("/api/classify", json={"texts": texts})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["intent"] for r in results] == [router.classify(t).intent for t in texts]
    assert results[2]["reason"] == "empty_input"
    assert client.post("/api/classify", json={"texts": []}).json() == {"results": []}
    assert client.post("/api/classify", json={"texts": ["a"] * MAX_BATCH}).status_code == 200


def test_odd_unicode_gets_an_answer(client: TestClient) -> None:
    body = '{"text": "price of \\ud800 nvda \\u0000 \\ud83d\\ude80"}'  # lone surrogate, NUL, emoji
    response = client.post("/api/classify", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.json()["intent"]


def _post(client: TestClient, body: bytes | str, content_type: str | None = "application/json"):
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post("/api/classify", content=body, headers=headers)


@pytest.mark.parametrize(
    "body, content_type, status, field, words",
    [
        (b"{", "application/json", 400, None, "not valid JSON"),
        (b"\xff\xfe\x00", "application/json", 400, None, "not valid JSON"),
        (b"[" * 50000 + b"]" * 50000, "application/json", 413, None, "limit"),
        (b"[" * 20000 + b"]" * 20000, "application/json", 400, None, "not valid JSON"),
        (b'{"text": "hi"}', "text/plain", 415, None, "application/json"),
        (b'{"text": "hi"}', None, 415, None, "application/json"),
        (b'{"text": "hi"}', "application/x-www-form-urlencoded", 415, None, "application/json"),
        (b'"just a string"', "application/json", 422, None, "JSON object"),
        (b"[]", "application/json", 422, None, "JSON object"),
        (b"{}", "application/json", 422, "text", "missing"),
        (b'{"txt": "hi"}', "application/json", 422, "text", "missing"),
        (b'{"text": 5}', "application/json", 422, "text", "string"),
        (b'{"text": null}', "application/json", 422, "text", "string"),
        (b'{"text": ["hi"]}', "application/json", 422, "text", "string"),
        (b'{"texts": "hi"}', "application/json", 422, "texts", "list"),
        (b'{"texts": ["hi", 3]}', "application/json", 422, "texts[1]", "string"),
        (b'{"text": "a", "texts": ["b"]}', "application/json", 422, "texts", "not both"),
        (json.dumps({"texts": ["a"] * (MAX_BATCH + 1)}).encode(), "application/json", 413, "texts", f"limit is {MAX_BATCH}"),
        (json.dumps({"text": "a" * 4097}).encode(), "application/json", 413, "text", "limit is 4,096"),
        (json.dumps({"texts": ["ok", "a" * 4097]}).encode(), "application/json", 413, "texts[1]", "limit is 4,096"),
        (json.dumps({"text": "a" * (MAX_BODY_BYTES + 1)}).encode(), "application/json", 413, None, "65,536"),
    ],
)
def test_classify_errors(client: TestClient, body: bytes, content_type: str | None, status: int, field: str | None, words: str) -> None:
    response = _post(client, body, content_type)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert_isolated(response)
    error = response.json()
    assert words in error["error"]
    assert error.get("field") == field


def test_a_body_streamed_without_length_is_cut_at_the_limit(client: TestClient) -> None:
    def chunks():
        for _ in range(100):
            yield b" " * 1024

    response = client.post("/api/classify", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "limit" in response.json()["error"]


def test_wrong_methods_get_405(client: TestClient) -> None:
    for method, url, allow in [("GET", "/api/classify", "POST"), ("PUT", "/api/classify", "POST"), ("POST", "/api/status", "GET, HEAD"),
                               ("DELETE", "/api/health", "GET, HEAD"), ("POST", "/index.html", "GET, HEAD"), ("PUT", "/web/router.js", "GET, HEAD")]:
        response = client.request(method, url)
        assert response.status_code == 405, (method, url)
        assert response.headers["allow"] == allow
        assert "error" in response.json()
        assert_isolated(response)
    assert client.get("/api/unknown").status_code == 404


def test_status_and_health(client: TestClient, router: Router, layout: WebLayout) -> None:
    assert client.get("/api/health").json() == {"ok": True}
    status = client.get("/api/status").json()
    assert status["ready"] is True and status["labels"] == router.status()["labels"]
    assert [t["name"] for t in status["tiers"]] == ["bow"]
    assert status["server"]["limits"] == {"max_body_bytes": MAX_BODY_BYTES, "max_batch": MAX_BATCH, "max_chars": 4096}
    assert status["server"]["bundle"] == str(layout.bundle)


def test_max_chars_follows_the_router(layout: WebLayout, small_bundle: Path) -> None:
    client = TestClient(create_app(layout, Router.from_bundle(small_bundle, max_chars=20)))
    response = _post(client, json.dumps({"text": "a" * 21}))
    assert response.status_code == 413 and "limit is 20" in response.json()["error"]
    assert _post(client, json.dumps({"text": "a" * 20})).status_code == 200


def test_an_internal_error_is_json_with_the_headers(layout: WebLayout, small_bundle: Path) -> None:
    broken = Router.from_bundle(small_bundle)
    broken.classify = lambda text: 1 / 0  # type: ignore[method-assign]
    client = TestClient(create_app(layout, broken), raise_server_exceptions=False)
    response = _post(client, b'{"text": "hello"}')
    assert response.status_code == 500 and response.json() == {"error": "internal server error"}
    assert_isolated(response)


# ---------------------------------------------------------------- the runtime zip


def test_runtime_zip_is_reproducible_and_holds_only_sources() -> None:
    first, second = runtime_zip(), runtime_zip()
    assert first == second
    with zipfile.ZipFile(__import__("io").BytesIO(first)) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert all(n.startswith("runtime_py/") and (n.endswith(".py") or n == "runtime_py/py.typed") for n in names)
        assert {"runtime_py/__init__.py", "runtime_py/router.py", "runtime_py/py.typed"} <= set(names)
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
    expected = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "runtime_py").glob("*.py"))
    assert [n for n in names if n.count("/") == 1 and n.endswith(".py")] == expected


def test_the_served_zip_imports_and_routes(client: TestClient, tmp_path: Path, small_bundle: Path) -> None:
    archive = client.get("/py/runtime_py.zip").content
    target = tmp_path / "unpacked"
    with zipfile.ZipFile(__import__("io").BytesIO(archive)) as zf:
        zf.extractall(target)
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "import runtime_py; assert runtime_py.__file__.startswith(sys.argv[1]), runtime_py.__file__;"
        "r = runtime_py.Router.from_bundle(sys.argv[2], strict=True).classify('whats the price of nvda');"
        "print(json.dumps([r.intent, r.slots]))"
    )
    done = subprocess.run([sys.executable, "-S", "-c", code, str(target), str(small_bundle)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["quotes", {"SYMBOL": ["NVDA"]}]


# ---------------------------------------------------------------- the real vendor tree and the command


def test_whitelist_matches_the_installed_packages() -> None:
    """Every whitelisted file exists, and every .mjs/.wasm an ort entry point loads is whitelisted."""
    real = WebLayout(bundle=ROOT / "models" / "bundles" / "finance")
    if not (real.node_modules / "onnxruntime-web").is_dir():
        pytest.skip("node_modules not installed (npm ci --ignore-scripts)")
    missing = [f"{p}/{n}" for p, spec in VENDOR.items() for n in spec.files if not real.vendor_source(p, n).is_file()]
    assert not missing
    ort = set(VENDOR["ort"].files)
    for entry in ("ort.wasm.min.mjs", "ort.webgpu.min.mjs", "ort.webgl.min.mjs"):
        loaded = set(re.findall(r'"(ort-wasm[\w.-]*\.mjs)"', real.vendor_source("ort", entry).read_text()))
        for module in loaded:
            assert module in ort, (entry, module)
            wasm = set(re.findall(r'"(ort-wasm[\w.-]*\.wasm)"', real.vendor_source("ort", module).read_text()))
            assert wasm and wasm <= ort, (module, wasm)
    lock_loader = real.vendor_source("pyodide", "pyodide.mjs").read_text()
    for name in ("pyodide-lock.json", "python_stdlib.zip", "pyodide.asm.wasm"):
        assert f'"{name}"' in lock_loader and name in VENDOR["pyodide"].files


def test_is_loopback_and_port_in_use() -> None:
    assert server.is_loopback("127.0.0.1") and server.is_loopback("::1") and server.is_loopback("localhost")
    assert not server.is_loopback("0.0.0.0") and not server.is_loopback("192.168.1.4")
    taken = server.bind("127.0.0.1", 0)
    taken.listen()
    try:
        with pytest.raises(IntentKitError, match="already in use"):
            server.bind("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()
    with pytest.raises(IntentKitError, match="cannot resolve"):
        server.bind("no-such-host.invalid", 0)


def _repo_has_web_assets() -> bool:
    return not WebLayout(bundle=ROOT).missing_assets()  # the npm files; the page itself is optional for serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_runs_refuses_a_taken_port_and_stops_on_ctrl_c(small_bundle: Path) -> None:
    if not _repo_has_web_assets():
        pytest.skip("node_modules missing in this checkout (npm ci --ignore-scripts)")
    port = _free_port()
    command = [sys.executable, "-m", "builder", "serve", "--no-build", "--bundle", str(small_bundle), "--port", str(port)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "timeout"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                    assert json.load(answer) == {"ok": True}
                    break
            except OSError:
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/py/runtime_py.zip") as answer:
            assert answer.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            assert answer.read() == runtime_zip()
        second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/" in err and "stopped" in err and "Traceback" not in err


def test_serve_without_a_bundle_says_so(tmp_path: Path) -> None:
    if not _repo_has_web_assets():
        pytest.skip("node_modules missing in this checkout (npm ci --ignore-scripts)")
    done = subprocess.run([sys.executable, "-m", "builder", "serve", "--no-build", "--bundle", str(tmp_path / "none"), "--port", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no usable tier" in done.stderr and "Traceback" not in done.stderr


def test_text_files_are_gzipped_when_accepted(client: TestClient, small_bundle: Path) -> None:
    """bow.json and the scripts travel gzipped to a client that accepts it, with their own ETag; the
    bytes after decoding are the file's (the browser checks their sha256)."""
    plain = client.get("/bundle/bow.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.headers["vary"] == "Accept-Encoding"
    raw = client.get("/bundle/bow.json", headers={"Accept-Encoding": "gzip, br"})
    assert raw.headers["content-encoding"] == "gzip" and raw.content == (small_bundle / "bow.json").read_bytes()
    assert int(raw.headers["content-length"]) < len(raw.content) and raw.headers["etag"] != plain.headers["etag"]
    again = client.get("/bundle/bow.json", headers={"Accept-Encoding": "gzip", "If-None-Match": raw.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/bundle/bow.json", headers={"Accept-Encoding": "gzip;q=0"}).headers.get("content-encoding") is None
    for url in ("/bundle/onnx/model_quantized.onnx", "/vendor/ort/ort-wasm-simd-threaded.wasm"):  # binary files too, as CDNs send them
        binary = client.get(url, headers={"Accept-Encoding": "gzip"})
        assert binary.status_code == 200 and binary.headers["content-encoding"] == "gzip", url
        assert int(binary.headers["content-length"]) < len(binary.content), url
