"""Input checks shared by every tier: what the router accepts as text, and how it is cleaned."""

from __future__ import annotations

import re

from .errors import InputError

DEFAULT_MAX_CHARS = 4096

_SURROGATE = re.compile("[\ud800-\udfff]")


def prepare_text(text: object, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Return `text` as a clean ``str`` or raise :class:`InputError`.

    Bytes are decoded as UTF-8 (undecodable bytes become U+FFFD); lone surrogates,
    which cannot be encoded anywhere, also become U+FFFD. Longer inputs than
    ``max_chars`` are refused before any work is done, so size cannot cause a hang.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise InputError(f"expected text as str, got {type(text).__name__}")
    if len(text) > max_chars:
        raise InputError(
            f"input is {len(text):,} characters; the limit is {max_chars:,} "
            "(set max_chars or INTENT_MAX_CHARS to change it)"
        )
    return _SURROGATE.sub("\ufffd", text)
