"""The BoW tier into a bundle: train it on a split folder (:mod:`builder.train.bow`), then write
``bow.json``, the tier, its out-of-scope labels and the slots, and refit the cascade's hand-offs
when the bundle has a later tier; for ``train-bow``, ``build`` and the held-out experiment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..bundle.writer import BundleDraft, edit_bundle
from ..data.datasets import read_splits
from ..data.oos_labels import record_oos_labels
from ..log import to_stderr
from ..train.bow import BowOptions, BowResult, train_bow
from ..train.cascade import DEFAULT_TOLERANCE, fit_manifest


def train_bow_into_bundle(
    data: Path, out: Path, options: BowOptions, replace: bool = False, progress: bool = True,
    handoff_tolerance: float = DEFAULT_TOLERANCE, draft: BundleDraft | None = None, log: Callable[[str], None] = to_stderr,
) -> BowResult:
    """Train the BoW tier on the splits in `data` into the bundle at `out` (a new one with `replace`),
    or into `draft` when given: a step of `build`, which swaps the bundle in at its end."""
    splits = read_splits(data, options.seed)
    log(f"training the bag-of-words tier on {data}: " + ", ".join(f"{k} {len(v):,}" for k, v in splits.items()))
    result = train_bow(splits, options, log=log, progress=progress)
    slots_file = data / "slots.json"
    shared = draft is not None
    with edit_bundle(out, draft, replace=replace) as draft:
        size = draft.write_json("bow.json", result.model).stat().st_size
        summary = {name: {k: m[k] for k in ("n", "accuracy", "macro_f1", "ece_uncalibrated", "ece") if k in m} for name, m in result.metrics.items()}
        draft.set_tier("bow", "bow", {"model": "bow.json"}, result.labels, metrics=summary)
        if record_oos_labels(draft.manifest, result.labels, options.oos_labels):
            log(f"out-of-scope class: {', '.join(draft.manifest['routing']['oos_labels'])} (routing.oos_labels)")
        if slots_file.exists():
            draft.set_slots(json.loads(slots_file.read_text(encoding="utf-8")))
        fit_manifest(draft.root, draft.manifest, splits["val"], handoff_tolerance, log)
    log(f"best epoch {result.best_epoch}, temperature {result.temperature:.3f}, {result.seconds:.1f} s")
    for name, m in result.metrics.items():
        log(f"{name}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, ECE {m['ece_uncalibrated']:.4f} -> {m['ece']:.4f}")
    log(f"staged bow.json ({size / 1024:.0f} KiB)" if shared else f"wrote {out}/ (bow.json {size / 1024:.0f} KiB)")
    return result
