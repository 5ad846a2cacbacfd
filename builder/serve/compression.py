"""gzip for ``serve``'s files (HTML, JavaScript, CSS, JSON, WASM, ONNX): compressed once per file
version and kept in memory, sent when the request accepts gzip, as static hosts and CDNs do.
``bow.json`` shrinks by about two thirds, onnxruntime-web's WASM build from 14.2 to 3.7 MB, an int8
graph by about a quarter and a 4-bit one by 15%; files over ``MAX_BYTES`` (fp32 graphs) go as they are."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

COMPRESSIBLE = ("text/", "application/json", "application/javascript", "application/manifest+json", "image/svg+xml", "application/wasm",
                "application/octet-stream")
MIN_BYTES = 1024
MAX_BYTES = 64 * 2**20
LEVEL = 6

_cache: dict[tuple[str, int, int], bytes] = {}


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when the ``Accept-Encoding`` header lists gzip without ``q=0``."""
    for part in (accept_encoding or "").lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.replace(" ", "")
            return not (q.startswith("q=0") and q.strip("q=0.") == "")
    return False


def compressible(media_type: str, size: int) -> bool:
    return MIN_BYTES <= size <= MAX_BYTES and media_type.split(";")[0].strip().startswith(COMPRESSIBLE)


def gzipped(path: Path, stat_result: os.stat_result) -> bytes:
    """`path`'s bytes, gzipped; cached by (path, size, mtime), so a changed file is compressed anew."""
    key = (str(path), stat_result.st_size, stat_result.st_mtime_ns)
    data = _cache.get(key)
    if data is None:
        data = gzip.compress(path.read_bytes(), LEVEL, mtime=0)
        for old in [k for k in _cache if k[0] == key[0]]:
            del _cache[old]
        _cache[key] = data
    return data
