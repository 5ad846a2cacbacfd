"""Fitting the cascade to the data: each earlier tier's hand-off threshold and, where the data has
out-of-scope rows, the last tier's clarify threshold, chosen on validation data.

Every tier scores every row once (:func:`score`); :func:`route` then replays the router's decision
(runtime_py/router.py: the first tier whose top probability reaches its threshold with a top-2
margin of at least ``margin`` answers; a confident out-of-scope label ends in "clarify") for any
thresholds, so a fit tries a hundred hand-offs for the price of one pass.

The hand-off of each earlier tier is the lowest (most early answers) whose cascade keeps the
in-scope accuracy and the accuracy of its answers within ``tolerance`` of the last tier alone and
rejects out-of-scope rows no less often. "Clarify" counts as wrong for in-scope rows and as right for out-of-scope rows.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from runtime_py import Router
from runtime_py.bundle import MANIFEST_NAME, parse_manifest
from runtime_py.tiers import load_tier

from ..bundle.writer import open_bundle
from ..data.datasets import Example
from ..data.oos_labels import oos_intents
from ..errors import BuildError
from .calibration import THRESHOLD_CEILING, THRESHOLD_FLOOR

DEFAULT_TOLERANCE = 0.002  # in-scope accuracy the cascade may lose to its last tier alone (0.2 points)
HANDOFF_GRID: tuple[float, ...] = tuple(float(t) for t in np.round(np.arange(0.30, 0.99, 0.01), 2)) + (
    0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999, 1.0,
)
CLARIFY_GRID: tuple[float, ...] = tuple(float(t) for t in np.round(np.arange(THRESHOLD_FLOOR, THRESHOLD_CEILING + 1e-9, 0.01), 2))
_EPS = 1e-12  # accuracies are ratios of counts: compare them without float noise
UNKNOWN = -2  # target of a row whose in-scope intent no tier knows: never answered right


@dataclass
class Scores:
    """Every tier's calibrated probabilities on every row, over one label order, and its time per row."""

    labels: list[str]
    tiers: list[str]
    probs: list[np.ndarray]  # per tier: (rows, its labels), in the tier's own order (the router breaks ties by it)
    columns: list[np.ndarray]  # per tier: the index in `labels` of each of its labels
    seconds: np.ndarray  # (tiers, rows)
    targets: np.ndarray  # label index, UNKNOWN for an in-scope intent no tier knows
    oos_rows: np.ndarray  # rows whose intent means "out of scope"
    oos_labels: np.ndarray  # labels that mean "out of scope"
    margin: float

    @property
    def has_oos(self) -> bool:
        return bool(self.oos_rows.any())


@dataclass
class Outcome:
    """What the router answers per row: a label index or -1 ("clarify"), the tier that ended the
    cascade (-1: none was confident) and the time spent in the tiers that ran."""

    answer: np.ndarray
    by: np.ndarray
    seconds: np.ndarray


@dataclass
class Figures:
    """One routing of the rows: in-scope accuracy, out-of-scope recall (None without such rows),
    the accuracy of the answers given, the share each tier ended, and the mean time per row."""

    accuracy: float
    oos_recall: float | None
    answer_precision: float
    answered_by: dict[str, float]
    clarify: float
    mean_ms: float

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()} | {
            "answered_by": {k: round(v, 6) for k, v in self.answered_by.items()}
        }


def score(router: Router, rows: Sequence[Example]) -> Scores:
    """Run every tier of `router` (blends included, as the router answers) on every row."""
    if not router.tiers:
        raise BuildError("no tier to score")
    labels = list(router.tiers[-1].labels)
    index = {label: i for i, label in enumerate(labels)}
    oos_names = oos_intents(router.oos_labels)
    probs, columns, seconds = [], [], np.zeros((len(router.tiers), len(rows)))
    for t, tier in enumerate(router.tiers):
        if set(tier.labels) != set(labels):
            raise BuildError(f"tiers {tier.name!r} and {router.tiers[-1].name!r} have different intents")
        matrix = np.zeros((len(rows), len(labels)))
        for i, row in enumerate(rows):
            start = time.perf_counter()
            matrix[i] = tier.probabilities(row.text)
            seconds[t, i] = time.perf_counter() - start
        probs.append(matrix)
        columns.append(np.array([index[label] for label in tier.labels]))
    oos_rows = np.array([r.intent in oos_names for r in rows], dtype=bool)
    targets = np.array([index.get(r.intent, UNKNOWN) for r in rows], dtype=np.int64)
    targets[oos_rows] = -1  # out-of-scope rows expect "clarify" (-1), whether or not a tier has the label
    oos_labels = np.array([label in router.oos_labels for label in labels], dtype=bool)
    return Scores(labels, [t.name for t in router.tiers], probs, columns, seconds, targets, oos_rows, oos_labels, router.margin)


def route(scores: Scores, gates: Sequence[float | None]) -> Outcome:
    """The router's answers when tier i needs confidence ``gates[i]`` (None: the tier is left out)."""
    n = len(scores.targets)
    answer, by, seconds = np.full(n, -1), np.full(n, -1), np.zeros(n)
    waiting = np.ones(n, dtype=bool)
    for t, (p, gate) in enumerate(zip(scores.probs, gates)):
        if gate is None:
            continue
        seconds[waiting] += scores.seconds[t][waiting]
        top = p.argmax(axis=1)  # the first of equal maxima, as the router's stable sort
        confidence = p[np.arange(n), top]
        runner_up = np.partition(p, -2, axis=1)[:, -2] if p.shape[1] > 1 else np.zeros(n)
        accepted = waiting & (confidence >= gate) & (confidence - runner_up >= scores.margin)
        answer[accepted], by[accepted] = scores.columns[t][top[accepted]], t
        waiting &= ~accepted
    out_of_scope = answer >= 0
    out_of_scope[out_of_scope] = scores.oos_labels[answer[out_of_scope]]
    answer[out_of_scope] = -1
    return Outcome(answer, by, seconds)


def figures(scores: Scores, outcome: Outcome) -> Figures:
    right = outcome.answer == scores.targets
    in_scope = ~scores.oos_rows
    answered = outcome.answer >= 0
    n = max(len(right), 1)
    return Figures(
        accuracy=float(right[in_scope].mean()) if in_scope.any() else 0.0,
        oos_recall=float(right[scores.oos_rows].mean()) if scores.has_oos else None,
        answer_precision=float(right[answered].mean()) if answered.any() else 0.0,
        answered_by={name: float((outcome.by == t).sum() / n) for t, name in enumerate(scores.tiers)},
        clarify=float((outcome.answer < 0).sum() / n),
        mean_ms=float(outcome.seconds.mean() * 1000) if len(right) else 0.0,
    )


def alone(scores: Scores, threshold: float) -> list[float | None]:
    """Gates that run the last tier only."""
    return [None] * (len(scores.tiers) - 1) + [threshold]


def keeps_up(candidate: Figures, reference: Figures, tolerance: float) -> bool:
    """Within `tolerance` of the reference's in-scope accuracy and of the accuracy of its answers,
    and rejecting out-of-scope rows as often. Accuracy alone is not enough: an earlier tier that
    answers what the last tier would have met with "clarify" raises in-scope accuracy (clarify
    counts as wrong) while its answers get less reliable than the last tier's threshold promises."""
    if candidate.accuracy < reference.accuracy - tolerance - _EPS:
        return False
    if candidate.answer_precision < reference.answer_precision - tolerance - _EPS:
        return False
    return reference.oos_recall is None or (candidate.oos_recall or 0.0) >= reference.oos_recall - _EPS


@dataclass
class CascadeFit:
    """The chosen gates and what they give on the validation rows."""

    tiers: list[str]
    rows: int
    tolerance: float
    threshold: float  # the last tier's clarify threshold
    threshold_fitted: bool  # chosen here (the rows have out-of-scope text), else kept
    target_precision: float | None
    handoffs: dict[str, float]
    met: dict[str, bool]  # per earlier tier: a hand-off below 1.0 kept the cascade within tolerance
    last_alone: Figures
    cascade: Figures
    notes: list[str] = field(default_factory=list)


def fit_clarify(scores: Scores, target_precision: float) -> tuple[float, Figures]:
    """The last tier's lowest clarify threshold whose answers (out-of-scope rows answered with an
    intent count as wrong) are right at least `target_precision` of the time; the ceiling if none."""
    for threshold in CLARIFY_GRID:
        result = figures(scores, route(scores, alone(scores, threshold)))
        if result.answer_precision >= target_precision - _EPS and result.clarify < 1.0:
            return threshold, result
    return CLARIFY_GRID[-1], figures(scores, route(scores, alone(scores, CLARIFY_GRID[-1])))


def fit(scores: Scores, threshold: float, tolerance: float = DEFAULT_TOLERANCE, target_precision: float | None = None) -> CascadeFit:
    """Choose the gates on `scores`. The last tier keeps `threshold` unless the rows have out-of-scope
    text and `target_precision` is given; then, from the tier next to the last back to the first,
    each earlier tier gets the lowest hand-off of :data:`HANDOFF_GRID` that keeps up with the last
    tier alone (:func:`keeps_up`), the tiers after it already fitted."""
    fitted = scores.has_oos and target_precision is not None
    if fitted:
        threshold, _ = fit_clarify(scores, target_precision)  # type: ignore[arg-type]
    gates: list[float | None] = alone(scores, threshold)
    reference = figures(scores, route(scores, gates))
    handoffs: dict[str, float] = {}
    met: dict[str, bool] = {}
    for t in reversed(range(len(scores.tiers) - 1)):
        name = scores.tiers[t]
        met[name] = False
        for candidate in HANDOFF_GRID:  # ends at 1.0 when none keeps up
            gates[t] = candidate
            if keeps_up(figures(scores, route(scores, gates)), reference, tolerance):
                met[name] = candidate < 1.0
                break
        handoffs[name] = candidate
    return CascadeFit(
        tiers=list(scores.tiers), rows=len(scores.targets), tolerance=tolerance, threshold=threshold, threshold_fitted=fitted,
        target_precision=target_precision if fitted else None, handoffs=handoffs, met=met,
        last_alone=reference, cascade=figures(scores, route(scores, gates)),
    )


def curve(scores: Scores, handoffs: Sequence[float], threshold: float) -> list[dict[str, Any]]:
    """The cascade at each hand-off (the same for every earlier tier), the last tier at `threshold`."""
    points = []
    for handoff in handoffs:
        gates: list[float | None] = [handoff] * (len(scores.tiers) - 1) + [threshold]
        points.append({"handoff": handoff, **figures(scores, route(scores, gates)).to_json()})
    return points


def draft_router(root: Path, manifest: dict[str, Any]) -> Router:
    """The router over a bundle being written (its manifest not on disk yet), with no setting taken
    from the environment: the fit must see the bundle as shipped."""
    parsed = parse_manifest(json.loads(json.dumps(manifest)), f"{root} (staged manifest)")
    # The transformer loader checks its labels against the manifest on disk; in a staging folder
    # that is this draft (the bundle's own manifest is written over it when the draft is finished).
    (root / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    tiers = [load_tier(root, spec, check_hash=False, environ={}) for spec in parsed.tiers]
    return Router(tiers, manifest=parsed, environ={})


def fit_manifest(
    root: Path, manifest: dict[str, Any], rows: Sequence[Example], tolerance: float = DEFAULT_TOLERANCE,
    log: Callable[[str], None] = print,
) -> CascadeFit | None:
    """Fit the gates of the bundle staged at `root` on `rows` and write them, with how they were
    chosen, into `manifest` (each earlier tier's ``handoff_threshold`` and ``calibration.handoff``;
    the last tier's ``threshold`` and ``calibration.clarify`` where the rows have out-of-scope text).
    None, with nothing written, when there is nothing to fit."""
    entries = manifest.get("tiers", [])
    last = entries[-1] if entries else {}
    precision = (last.get("calibration") or {}).get("target_precision")
    oos_names = oos_intents(manifest.get("routing", {}).get("oos_labels", []))
    clarify_to_fit = precision is not None and any(r.intent in oos_names for r in rows)
    if not rows or not entries or (len(entries) < 2 and not clarify_to_fit):
        return None
    router = draft_router(root, manifest)
    scores = score(router, rows)
    result = fit(scores, router.thresholds[last["name"]][0], tolerance, precision)
    chosen_on = {"fitted_on": "val", "rows": result.rows}
    for entry in entries[:-1]:
        handoff = result.handoffs[entry["name"]]
        entry["handoff_threshold"] = handoff
        entry.setdefault("calibration", {})["handoff"] = {
            **chosen_on,
            "rule": "lowest hand-off whose cascade keeps in-scope accuracy and the accuracy of its answers within the tolerance of the last tier alone, out-of-scope recall no lower",
            "tolerance": tolerance,
            "met": result.met[entry["name"]],
            "last_tier_alone": result.last_alone.to_json(),
            "cascade": result.cascade.to_json(),
        }
    if result.threshold_fitted:
        last["threshold"] = result.threshold
        last.setdefault("calibration", {})["clarify"] = {
            **chosen_on,
            "rule": "lowest threshold whose answers are right at least target_precision of the time, out-of-scope rows answered with an intent counting as wrong",
            "target_precision": precision,
            "answer_precision": round(result.last_alone.answer_precision, 6),
            "oos_recall": result.last_alone.oos_recall,
        }
    log(format_fit(result))
    return result


def refit_bundle(bundle: Path, rows: Sequence[Example], tolerance: float = DEFAULT_TOLERANCE,
                 log: Callable[[str], None] = print) -> CascadeFit:
    """``builder cascade``: fit the gates of the bundle at `bundle` on `rows` (real validation
    utterances) and write them into its manifest, atomically."""
    with open_bundle(bundle) as draft:
        result = fit_manifest(draft.root, draft.manifest, rows, tolerance, log)
        if result is None:
            raise BuildError(f"{bundle}: nothing to fit (one tier, and no out-of-scope rows or no target precision for its threshold)")
    return result


def format_fit(result: CascadeFit) -> str:
    a, c, tiers = result.last_alone, result.cascade, result.tiers
    lines = [f"cascade fitted on {result.rows:,} validation rows (tolerance {result.tolerance * 100:.2g} points):"]
    if result.threshold_fitted:
        short = "" if a.answer_precision >= (result.target_precision or 0.0) - _EPS else "; no threshold reaches the target, so the ceiling"
        lines.append(f"  {tiers[-1]} says clarify below {result.threshold:.2f}: answers right {a.answer_precision:.4f} "
                     f"(target {result.target_precision}{short}), out-of-scope recall {a.oos_recall:.4f}")
    for name, handoff in result.handoffs.items():
        how = "" if result.met[name] else " (no lower hand-off keeps up with the last tier: it answers only when certain)"
        lines.append(f"  {name} answers alone at >= {handoff:g}{how}")
    oos = lambda f: "" if f.oos_recall is None else f", out-of-scope recall {f.oos_recall:.4f}"  # noqa: E731
    shares = ", ".join(f"{name} {share:.1%}" for name, share in c.answered_by.items())
    lines.append(f"  cascade: accuracy {c.accuracy:.4f}{oos(c)}; answered by {shares}, clarify {c.clarify:.1%}; {c.mean_ms:.2f} ms per row")
    lines.append(f"  {tiers[-1]} alone: accuracy {a.accuracy:.4f}{oos(a)}; {a.mean_ms:.2f} ms per row")
    return "\n".join(lines)
