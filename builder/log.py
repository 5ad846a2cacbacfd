"""Where progress goes: stderr, a line at a time, so that stdout carries only results."""

from __future__ import annotations

import sys


def to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
