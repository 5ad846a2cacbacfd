"""``builder blend``: choose on validation data how much of another tier's probabilities a tier
averages into its own (runtime_py/blend.py), refit its clarify threshold on the blend, and record
both in the manifest.

The weight is the one with the best validation accuracy on a grid of 0.0..1.0 (ties go to the
larger own weight, so 1.0, "no blend", wins unless blending helps). Test data is never looked at.

The validation data must look like real traffic: template-made data flatters the BoW tier (on the
finance templates it chose a weight of 0.1 and lost 7 points on hand-written phrasings), which is
why ``build`` does not blend (docs/BENCHMARKS.md, "Blending the tiers").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from runtime_py.blend import blend_setting
from runtime_py.bundle import read_manifest
from runtime_py.tiers import load_tier

from ..bundle.writer import open_bundle
from ..data.datasets import Example
from ..errors import BuildError
from .calibration import choose_threshold, fit_temperature
from .cascade import DEFAULT_TOLERANCE, fit_manifest
from .metrics import expected_calibration_error, softmax

GRID = tuple(round(0.1 * i, 1) for i in range(11))


def choose_weight(own: np.ndarray, partner: np.ndarray, targets: np.ndarray, grid: Sequence[float] = GRID) -> tuple[float, dict[float, float]]:
    """The own weight with the best accuracy of ``w * own + (1 - w) * partner`` (ties: the larger w),
    and each weight's accuracy."""
    accuracy = {float(w): float(((w * own + (1 - w) * partner).argmax(axis=1) == targets).mean()) for w in grid}
    best = max(accuracy, key=lambda w: (accuracy[w], w))
    return best, accuracy


@dataclass
class BlendReport:
    bundle: str
    tier: str
    partner: str
    rows: int
    weight: float
    temperature: float
    accuracy: dict[float, float]
    threshold: float
    old_threshold: float | None
    coverage: float
    answer_accuracy: float
    ece_before: float
    ece: float
    notes: list[str] = field(default_factory=list)


def blend_bundle(bundle: Path, val: Sequence[Example], tier: str = "transformer", partner: str = "bow",
                 weight: float | None = None, handoff_tolerance: float = DEFAULT_TOLERANCE,
                 log: Callable[[str], None] = print) -> BlendReport:
    """Choose (or take) the weight of `tier` blended with `partner` on `val`; write it, the refitted
    threshold and the cascade's refitted hand-offs into the bundle's manifest (a weight of 1.0
    removes the blend)."""
    manifest = read_manifest(bundle)
    specs = {s.name: s for s in manifest.tiers}
    for name in (tier, partner):
        if name not in specs:
            raise BuildError(f"{bundle}: no tier named {name!r} (has {', '.join(specs)})")
    if tier == partner:
        raise BuildError("a tier cannot blend with itself")
    own_tier, partner_tier = load_tier(bundle, specs[tier]), load_tier(bundle, specs[partner])
    if set(own_tier.labels) != set(partner_tier.labels):
        raise BuildError(f"tiers {tier!r} and {partner!r} have different intents: they cannot blend")
    index = {label: i for i, label in enumerate(own_tier.labels)}
    rows = [r for r in val if r.intent in index]
    if not rows:
        raise BuildError(f"no validation row has an intent of tier {tier!r}")
    order = [partner_tier.labels.index(label) for label in own_tier.labels]
    own = np.array([own_tier.probabilities(r.text) for r in rows])
    other = np.array([partner_tier.probabilities(r.text) for r in rows])[:, order]
    targets = np.array([index[r.intent] for r in rows])
    best, accuracy = choose_weight(own, other, targets)
    chosen = best if weight is None else float(weight)
    spec = specs[tier]
    mixed = chosen * own + (1 - chosen) * other
    log_mixed = np.log(np.clip(mixed, 1e-300, None))
    temperature = round(fit_temperature(log_mixed, targets), 6) if chosen < 1.0 else 1.0
    calibrated = softmax(log_mixed, temperature) if chosen < 1.0 else own
    target = float((spec.extra.get("calibration") or {}).get("target_precision", 0.97))
    threshold, coverage, answer_accuracy = choose_threshold(calibrated, targets, target)
    ece_before, ece = expected_calibration_error(mixed, targets), expected_calibration_error(calibrated, targets)
    notes = []
    if blend_setting(spec) is not None:
        notes.append(f"replaced the blend {spec.extra['blend']}")
    with open_bundle(bundle) as draft:
        entry = next(t for t in draft.manifest["tiers"] if t["name"] == tier)
        calibration = entry.setdefault("calibration", {})
        if chosen < 1.0:
            entry["blend"] = {"tier": partner, "weight": chosen, "temperature": temperature}
        else:
            entry.pop("blend", None)
        calibration["blend"] = {
            "fitted_on": "val",
            "rows": len(rows),
            "val_accuracy_by_weight": {str(w): a for w, a in accuracy.items()},
            "val_ece_before_temperature": ece_before,
            "val_ece": ece,
        }
        calibration.update(val_coverage=coverage, val_answer_accuracy=answer_accuracy)
        entry["threshold"] = threshold
        fit_manifest(draft.root, draft.manifest, val, handoff_tolerance, log)
    return BlendReport(str(bundle), tier, partner, len(rows), chosen, temperature, accuracy, threshold, spec.threshold,
                       coverage, answer_accuracy, ece_before, ece, notes)


def format_blend(report: BlendReport) -> str:
    lines = [f"{report.bundle}: tier {report.tier!r} blended with {report.partner!r} on {report.rows:,} validation rows"]
    lines += [f"  weight {w:.1f}: val accuracy {a:.4f}{'  <- chosen' if w == report.weight else ''}" for w, a in report.accuracy.items()]
    if report.weight >= 1.0:
        lines.append("  no blend: the tier answers alone")
    else:
        lines.append(f"  temperature {report.temperature:.3f}: val ECE {report.ece_before:.4f} -> {report.ece:.4f}")
    old = "-" if report.old_threshold is None else f"{report.old_threshold:.2f}"
    lines.append(f"  clarify threshold {old} -> {report.threshold:.2f} (val coverage {report.coverage:.3f}, "
                 f"accuracy of the answers {report.answer_accuracy:.4f})")
    lines += [f"  note: {n}" for n in report.notes]
    return "\n".join(lines)

