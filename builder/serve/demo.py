"""``python -m builder demo``: example utterances routed through a bundle and printed, then typed ones;
the same printout as ``predict``."""

from __future__ import annotations

import sys
from typing import Any

from runtime_py import Router
from runtime_py.errors import IntentKitError

DEMO_UTTERANCES = [
    "how is my portfolio doing this year",
    "how many shares of AAPL do I own",
    "whats the price of nvda",
    "move 500 dollars into my roth ira",
    "what is an index fund",
    "what's the weather like tomorrow",
]


def format_result(text: str, result: Any) -> str:
    conf = f"{result.confidence:.3f}" if result.confidence is not None else "-"
    lines = [f"text      {text!r}", f"intent    {result.intent}  (confidence {conf}, tier {result.tier or '-'}, {result.reason}, {result.latency_ms:.2f} ms)"]
    if result.ranking:
        lines.append("ranking   " + "  ".join(f"{label} {p:.3f}" for label, p in result.ranking[:5]))
    slots = ", ".join(f"{k}={'/'.join(v)}" for k, v in result.slots.items())
    lines.append(f"slots     {slots or '-'}" + (f"   missing: {', '.join(result.missing_slots)}" if result.missing_slots else ""))
    for r in result.tiers:
        detail = f"{r.label} {r.confidence:.3f} (margin {r.margin:.3f}, threshold {r.threshold:.2f})" if r.label else r.error
        lines.append(f"tier      {r.tier}: {detail} -> {r.reason}")
    return "\n".join(lines)


def run_demo(router: Router) -> None:
    """Print the answers to DEMO_UTTERANCES, then, on a terminal, to each line typed until an empty one."""
    for text in DEMO_UTTERANCES:
        print(format_result(text, router.classify(text)) + "\n")
    if sys.stdin.isatty():
        print("Type an utterance (empty line or Ctrl-D to quit).")
        while True:
            try:
                text = input("> ")
            except EOFError:
                break
            if not text.strip():
                break
            try:
                print(format_result(text, router.classify(text)) + "\n")
            except IntentKitError as exc:
                print(f"error: {exc}")
