"""Labels that mean "out of scope" (OOS): which of a tier's labels they are, and recording them in
the manifest's ``routing.oos_labels``, where the router reads them (it answers "clarify", reason
``out_of_scope``, when a tier confidently predicts one)."""

from __future__ import annotations

from typing import Any, Iterable

DEFAULT_OOS_LABELS: tuple[str, ...] = ("oos",)


def oos_labels_in(labels: Iterable[str], names: Iterable[str] = DEFAULT_OOS_LABELS) -> list[str]:
    """The labels of a trained tier that mean "out of scope"."""
    return sorted(set(labels) & set(names))


def oos_intents(recorded: Iterable[str]) -> set[str]:
    """The intents of labelled rows that expect "clarify": a bundle's ``routing.oos_labels`` and
    the default names, whether or not the bundle has such a class."""
    return set(recorded) | set(DEFAULT_OOS_LABELS)


def record_oos_labels(manifest: dict[str, Any], labels: Iterable[str], names: Iterable[str] = DEFAULT_OOS_LABELS) -> list[str]:
    """Set (or clear) ``routing.oos_labels`` in a manifest being written."""
    found = oos_labels_in(labels, names)
    routing = manifest.setdefault("routing", {})
    if found:
        routing["oos_labels"] = found
    else:
        routing.pop("oos_labels", None)
    return found
