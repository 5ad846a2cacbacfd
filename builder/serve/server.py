"""``python -m builder serve``: the demo page, the browser runtime and a JSON API on Starlette.

Files follow the layout of :mod:`builder.serve.web_assets`; the API is ``POST /api/classify``,
``GET /api/status`` and ``GET /api/health`` (docs/SERVE.md).
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime_py import Router
from runtime_py.bundle import Manifest
from runtime_py.errors import BundleError, InputError, IntentKitError

from .compression import accepts_gzip, compressible, gzipped
from .web_assets import ISOLATION_HEADERS, WebLayout, cache_control, require_assets, runtime_zip

MAX_BODY_BYTES = 64 * 1024
MAX_BATCH = 64
SERVER_NAME = "edge-intent-kit serve"
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class _IsolationHeaders:
    """Outermost ASGI wrapper: COOP/COEP/CORP (and nosniff) on every response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.extra = [(k.lower().encode(), v.encode()) for k, v in {**ISOLATION_HEADERS, "X-Content-Type-Options": "nosniff"}.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in self.extra if h[0] not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _App(Starlette):
    def build_middleware_stack(self) -> ASGIApp:
        return _IsolationHeaders(super().build_middleware_stack())


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


class _ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.response = _error(status, message, **extra)


@dataclass
class _State:
    layout: WebLayout
    router: Router
    runtime_zip: bytes
    runtime_zip_etag: str
    started: float = field(default_factory=time.time)
    _manifest_key: tuple[int, int, int] | None = None
    _manifest: Manifest | None = None

    def manifest(self) -> Manifest | None:
        """The served bundle's manifest, re-read when the file changes (a rebuild swaps it)."""
        try:
            st = (self.layout.bundle / "manifest.json").stat()
        except OSError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._manifest_key:
            try:
                self._manifest = self.layout.manifest()
            except BundleError:
                self._manifest = None
            self._manifest_key = key
        return self._manifest


def _not_modified(request: Request, etag: str, last_modified: str | None) -> bool:
    """RFC 9110 conditional GET: If-None-Match wins over If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag.removeprefix("W/") in tags
    since = request.headers.get("if-modified-since")
    if since and last_modified:
        try:
            return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
    return False


def _static(request: Request) -> Response:
    state: _State = request.app.state.serve
    if request.method not in ("GET", "HEAD"):
        raise HTTPException(405, headers={"Allow": "GET, HEAD"})
    try:
        resolved = state.layout.resolve(request.scope["path"], state.manifest())
    except IntentKitError as exc:  # the worker did not bundle (a syntax error in web/, say)
        print(f"error: {exc}", file=sys.stderr)
        return _error(500, str(exc))
    if resolved is None:
        raise HTTPException(404)
    headers = {"Cache-Control": cache_control(resolved.cache)}
    if resolved.path is None:  # the runtime zip, built in memory
        headers["ETag"] = state.runtime_zip_etag
        if _not_modified(request, state.runtime_zip_etag, None):
            return Response(status_code=304, headers=headers)
        return Response(state.runtime_zip, media_type=resolved.media_type, headers=headers)
    try:
        stat_result = os.stat(resolved.path)
    except OSError:
        raise HTTPException(404) from None
    response = FileResponse(resolved.path, media_type=resolved.media_type, headers=headers, stat_result=stat_result)
    etag, last_modified = response.headers["etag"], response.headers["last-modified"]
    gzip_it = compressible(resolved.media_type, stat_result.st_size)
    if gzip_it:
        headers["Vary"] = "Accept-Encoding"
        response.headers["Vary"] = "Accept-Encoding"
        gzip_it = accepts_gzip(request.headers.get("accept-encoding")) and "range" not in request.headers  # ranges: of the file's bytes
        if gzip_it:  # another representation: its own validator
            etag = etag[:-1] + '-gzip"' if etag.endswith('"') else etag + "-gzip"
    if _not_modified(request, etag, last_modified):
        return Response(status_code=304, headers={**headers, "ETag": etag, "Last-Modified": last_modified})
    if gzip_it:
        gz_headers = {**headers, "ETag": etag, "Last-Modified": last_modified, "Content-Encoding": "gzip"}
        return Response(gzipped(Path(resolved.path), stat_result), media_type=resolved.media_type, headers=gz_headers)
    return response


async def _read_json(request: Request) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise _ApiError(415, f"expected Content-Type application/json, got {content_type or 'none'}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _ApiError(413, f"request body is {int(declared):,} bytes; the limit is {MAX_BODY_BYTES:,}", limit=MAX_BODY_BYTES)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _ApiError(413, f"request body is over the limit of {MAX_BODY_BYTES:,} bytes", limit=MAX_BODY_BYTES)
    try:
        return json.loads(bytes(body))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _ApiError(400, f"request body is not valid JSON ({exc})") from None


def _texts_from(data: Any, max_chars: int) -> tuple[list[str], bool]:
    """The texts to classify and whether the request was a batch; _ApiError if malformed."""
    if not isinstance(data, dict):
        raise _ApiError(422, 'expected a JSON object {"text": "..."} or {"texts": ["...", ...]}')
    if "text" in data and "texts" in data:
        raise _ApiError(422, 'give either "text" or "texts", not both', field="texts")
    batch = "texts" in data
    if batch:
        texts = data["texts"]
        if not isinstance(texts, list):
            raise _ApiError(422, '"texts" must be a list of strings', field="texts")
        if len(texts) > MAX_BATCH:
            raise _ApiError(413, f'"texts" has {len(texts)} items; the limit is {MAX_BATCH}', field="texts", limit=MAX_BATCH)
        names = [f"texts[{i}]" for i in range(len(texts))]
    else:
        if "text" not in data:
            raise _ApiError(422, 'missing "text" (a string)', field="text")
        texts, names = [data["text"]], ["text"]
    for name, text in zip(names, texts):
        if not isinstance(text, str):
            raise _ApiError(422, f'"{name}" must be a string, got {type(text).__name__}', field=name)
        if len(text) > max_chars:
            raise _ApiError(
                413, f'"{name}" is {len(text):,} characters; the limit is {max_chars:,}', field=name, limit=max_chars
            )
    return texts, batch


async def _classify(request: Request) -> Response:
    router: Router = request.app.state.serve.router
    try:
        texts, batch = _texts_from(await _read_json(request), router.max_chars)
    except _ApiError as exc:
        return exc.response
    try:
        results = await run_in_threadpool(lambda: [router.classify(text).to_dict() for text in texts])
    except InputError as exc:
        return _error(422, str(exc), field="texts" if batch else "text")
    return JSONResponse({"results": results} if batch else results[0])


async def _status(request: Request) -> Response:
    state: _State = request.app.state.serve
    status = await run_in_threadpool(state.router.status)
    status["server"] = {
        "name": SERVER_NAME,
        "uptime_s": round(time.time() - state.started, 1),
        "bundle": str(state.layout.bundle),
        "limits": {"max_body_bytes": MAX_BODY_BYTES, "max_batch": MAX_BATCH, "max_chars": state.router.max_chars},
        "with_fp32": state.layout.with_fp32,
    }
    return JSONResponse(status)


async def _health(request: Request) -> Response:
    return JSONResponse({"ok": True})


def _only(methods: set[str], endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    allow = ", ".join(sorted(methods))

    async def guarded(request: Request) -> Response:
        if request.method not in methods:
            return JSONResponse({"error": f"{request.method} is not allowed on {request.url.path}; use {allow}"}, 405, headers={"Allow": allow})
        return await endpoint(request)

    return guarded


async def _api_not_found(request: Request) -> Response:
    return _error(404, f"no API endpoint {request.url.path}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    return _error(500, "internal server error")


def create_app(layout: WebLayout, router: Router | None = None) -> Starlette:
    """The Starlette app serving `layout`; loads the bundle's Router unless one is given."""
    archive = runtime_zip(layout.runtime_package)
    state = _State(
        layout=layout,
        router=router if router is not None else Router.from_bundle(layout.bundle),
        runtime_zip=archive,
        runtime_zip_etag='"' + hashlib.sha256(archive).hexdigest()[:32] + '"',
    )
    # Routes take every method and check it themselves: Starlette would answer a method
    # mismatch with the catch-all route's 404 rather than 405.
    every = list(ALL_METHODS)
    routes = [
        Route("/api/classify", _only({"POST"}, _classify), methods=every),
        Route("/api/status", _only({"GET", "HEAD"}, _status), methods=every),
        Route("/api/health", _only({"GET", "HEAD"}, _health), methods=every),
        Route("/api/{rest:path}", _api_not_found, methods=every),
        Route("/{path:path}", _static, methods=every),
    ]
    app = _App(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _internal_error})
    app.state.serve = state
    return app


# ---------------------------------------------------------------- running it


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port, or IntentKitError saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise IntentKitError(f"--host {host}: cannot resolve ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise IntentKitError(f"port {port} on {host} is already in use; choose another with --port (0 picks a free one)") from None
        raise IntentKitError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def url_for(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def run(app: Starlette, host: str, port: int, log: Callable[[str], None]) -> None:
    """Serve `app` until Ctrl-C (KeyboardInterrupt propagates to the caller) or SIGTERM."""
    import uvicorn

    sock = bind(host, port)
    if not is_loopback(host):
        log(f"warning: listening on {host}, not loopback: anyone who can reach this machine can use the page and the API")
    log(f"serving {app.state.serve.layout.bundle} at {url_for(sock, host)}  (Ctrl-C to stop)")
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False, lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def print_router_problems(router: Router, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> None:
    for problem in router.problems:
        log(f"warning: {problem['where']}: {problem['error']}")


def check_layout(layout: WebLayout, log: Callable[[str], None]) -> None:
    """Refuse to start without the browser runtime's files; bundle the worker now (an esbuild error
    shows here, not in the page); warn when the page itself is missing."""
    require_assets(layout, page=False)
    if layout.bundles_worker:
        layout.worker_file()
    if not layout.page.is_file():
        log(f"warning: {layout.page} is missing: the API works, the page answers 404")


def serve(layout: WebLayout, host: str, port: int, log: Callable[[str], None], hint: str) -> None:
    """Serve the page and the API on the bundle until Ctrl-C; `hint` says what to do about a bundle
    without a usable tier, which is refused."""
    router = Router.from_bundle(layout.bundle)
    if not router.tiers:
        raise IntentKitError(f"{layout.bundle}: no usable tier ({router.problems[0]['error'] if router.problems else 'empty bundle'}); {hint}")
    print_router_problems(router, log)
    try:
        run(create_app(layout, router), host, port, log)
    except KeyboardInterrupt:
        pass
    log("stopped")
