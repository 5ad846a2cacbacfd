"""``builder eval``: accuracy, macro-F1, per-intent P/R, confusions, ECE before/after temperature,
and (``--plot``) a reliability diagram and a confidence histogram per evaluated tier; for the
cascade, the hand-off curve (``--plot``: its chart too)."""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from runtime_py import Router
from runtime_py.blend import BlendedTier

from ..data.datasets import Example
from ..data.oos_labels import oos_intents
from ..errors import BuildError
from ..train.cascade import alone, curve, figures, route, score
from ..train.metrics import classification_report, evaluate_logits, expected_calibration_error, softmax

CASCADE = "cascade"
ALL = "all"
# Hand-offs the cascade report shows (with the bundle's own): where the trade-off moves on real data.
CURVE_HANDOFFS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)


@dataclass
class Scored:
    """The per-row figures behind a report: the confidence stated and whether the answer was right."""

    confidence: np.ndarray
    correct: np.ndarray


def evaluate_tier(router: Router, tier_name: str, rows: Sequence[Example]) -> tuple[dict[str, Any], Scored]:
    tier = next((t for t in router.tiers if t.name == tier_name), None)
    if tier is None:
        raise BuildError(f"no loaded tier {tier_name!r}; the bundle has {[t.name for t in router.tiers]}")
    index = {label: i for i, label in enumerate(tier.labels)}
    times = []
    logits = np.zeros((len(rows), len(tier.labels)))
    for i, row in enumerate(rows):
        start = time.perf_counter()
        logits[i] = tier.logits(row.text)
        times.append(time.perf_counter() - start)
    targets = np.asarray([index.get(r.intent, -1) for r in rows])
    report = evaluate_logits(logits, targets, tier.labels, tier.temperature)
    report.update(tier=tier_name, latency_ms_median=statistics.median(times) * 1000 if times else None)
    probs = softmax(logits, tier.temperature)
    if isinstance(tier, BlendedTier) and tier.partner is not None and len(rows):
        # what the router answers with: the tier's probabilities averaged with its partner's
        probs = np.array([tier.mix(own, tier.partner.probabilities(r.text)) for own, r in zip(probs, rows)])
        known = targets >= 0
        blended = classification_report(probs.argmax(axis=1)[known], targets[known], tier.labels)
        report["blend"] = {
            "tier": tier.partner.name,
            "weight": tier.weight,
            "temperature": tier.blend_temperature,
            "accuracy": float((probs.argmax(axis=1) == targets).mean()),
            "macro_f1": blended["macro_f1"],
            "ece": expected_calibration_error(probs[known], targets[known]),
        }
    return report, Scored(probs.max(axis=1), probs.argmax(axis=1) == targets)


def evaluate_cascade(router: Router, rows: Sequence[Example]) -> tuple[dict[str, Any], Scored]:
    """Route every row; "clarify" counts as wrong for accuracy, coverage is the answered share.
    Rows labelled with one of the bundle's OOS labels expect "clarify"."""
    known = {label for tier in router.tiers for label in tier.labels}
    labels = sorted({r.intent for r in rows} | known | {router.fallback_intent})
    index = {label: i for i, label in enumerate(labels)}
    preds, confidences, answered, times = [], [], [], []
    by_tier: dict[str, int] = {}
    for row in rows:
        result = router.classify(row.text)
        preds.append(index.get(result.intent, index[router.fallback_intent]))
        confidences.append(result.confidence or 0.0)
        answered.append(result.tier is not None and result.reason != "out_of_scope")
        times.append(result.latency_ms)
        key = result.tier or router.fallback_intent
        by_tier[key] = by_tier.get(key, 0) + 1
    oos = oos_intents(router.oos_labels)
    is_oos = np.array([r.intent in oos for r in rows], dtype=bool)
    targets = np.asarray([index[router.fallback_intent if out else r.intent] for r, out in zip(rows, is_oos)])
    preds_arr, answered_arr = np.asarray(preds), np.asarray(answered, dtype=bool)
    report = classification_report(preds_arr, targets, labels)
    correct = preds_arr == targets
    # ECE of the answers given: does a stated confidence p come true p of the time?
    conf = np.asarray(confidences)[answered_arr]
    pseudo = np.stack([conf, 1 - conf], axis=1)
    ece = expected_calibration_error(pseudo, np.where(correct[answered_arr], 0, 1)) if answered_arr.any() else 0.0
    report.update(
        tier=CASCADE,
        coverage=float(answered_arr.mean()) if len(rows) else 0.0,
        selective_accuracy=float(correct[answered_arr].mean()) if answered_arr.any() else 0.0,
        answered_by=by_tier,
        ece=ece,
        in_scope_accuracy=float(correct[~is_oos].mean()) if (~is_oos).any() else None,
        oos_recall=float(correct[is_oos].mean()) if is_oos.any() else None,
        latency_ms_median=statistics.median(times) if times else None,
        latency_ms_mean=statistics.fmean(times) if times else None,
    )
    if len(router.tiers) > 1:
        # Every tier on every row, then the router's decision replayed at each hand-off.
        handoffs = sorted({router.thresholds[t.name][1] for t in router.tiers[:-1]})
        threshold = router.thresholds[router.tiers[-1].name][0]
        scores = score(router, rows)
        report["handoffs"] = handoffs
        report["curve"] = curve(scores, sorted(set(CURVE_HANDOFFS) | set(handoffs)), threshold)
        report["last_tier_alone"] = figures(scores, route(scores, alone(scores, threshold))).to_json()
    return report, Scored(np.asarray(confidences)[answered_arr], correct[answered_arr])


def tier_names(router: Router, tier: str | None) -> list[str]:
    """`tier` as given to ``--tier``: a name, several separated by commas, "all" (every tier, then
    the cascade) or None (the last tier)."""
    if not tier:
        return [router.tiers[-1].name]
    if tier == ALL:
        return [t.name for t in router.tiers] + [CASCADE]
    names = [name.strip() for name in tier.split(",") if name.strip()]
    return names or [router.tiers[-1].name]


def evaluate(
    bundle: str | Path,
    rows: Sequence[Example],
    tier: str | None = None,
    plot_dir: str | Path | None = None,
    title: str = "",
    **router_options: Any,
) -> list[dict[str, Any]]:
    """One report per evaluated tier; with `plot_dir`, each report lists the PNGs written there."""
    if not rows:
        raise BuildError("the evaluation data has no rows")
    router = Router.from_bundle(bundle, strict=True, **router_options)
    if not router.tiers:
        raise BuildError(f"{bundle}: no tier could be loaded")
    reports = []
    for name in tier_names(router, tier):
        report, scored = evaluate_cascade(router, rows) if name == CASCADE else evaluate_tier(router, name, rows)
        if plot_dir is not None:
            report["plots"] = [str(p) for p in plot_scores(scored, Path(plot_dir), name, f"{title} ({name})".strip())]
            if report.get("curve"):
                from .plots import cascade_curve

                path = cascade_curve(report["curve"], Path(plot_dir) / "cascade-handoff.png", f"{title}: the hand-off".strip(), report["handoffs"])
                report["plots"].append(str(path))
        reports.append(report)
    return reports


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "tier"


def plot_scores(scored: Scored, out: Path, name: str, title: str) -> list[Path]:
    from .plots import confidence_histogram, reliability_diagram

    what = "answers given" if name == CASCADE else "calibrated top probability"
    return [
        reliability_diagram(scored.confidence, scored.correct, out / f"{_slug(name)}-reliability.png", f"{title}: {what}"),
        confidence_histogram(scored.confidence, scored.correct, out / f"{_slug(name)}-confidence.png", f"{title}: {what}"),
    ]


def format_report(report: dict[str, Any], title: str) -> str:
    lines = [title, ""]
    lines.append(f"  rows               {report['n']:,}")
    lines.append(f"  accuracy           {report['accuracy']:.4f}")
    lines.append(f"  macro-F1           {report['macro_f1']:.4f}")
    if report.get("tier") == CASCADE:
        lines.append(f"  coverage           {report['coverage']:.4f}  (answered without '{'clarify'}')")
        lines.append(f"  selective accuracy {report['selective_accuracy']:.4f}  (accuracy of the answers given)")
        lines.append(f"  answered by        {', '.join(f'{k}: {v:,}' for k, v in sorted(report['answered_by'].items()))}")
        lines.append(f"  ECE of answers     {report['ece']:.4f}")
        if report.get("in_scope_accuracy") is not None:
            lines.append(f"  in-scope accuracy  {report['in_scope_accuracy']:.4f}  ('clarify' counts as wrong)")
        if report.get("oos_recall") is not None:
            lines.append(f"  out-of-scope       {report['oos_recall']:.4f}  of the out-of-scope rows end in 'clarify'")
        if report.get("latency_ms_mean") is not None:
            lines.append(f"  mean latency       {report['latency_ms_mean']:.3f} ms per utterance")
    else:
        lines.append(
            f"  ECE (15 bins)      {report['ece_uncalibrated']:.4f} before -> {report['ece']:.4f} after temperature (T = {report['temperature']:.3f})"
        )
        if report.get("blend"):
            b = report["blend"]
            lines.append(f"  blended            with {b['tier']} (weight {b['weight']:.2f}, T {b['temperature']:.3f}): accuracy {b['accuracy']:.4f}, "
                         f"macro-F1 {b['macro_f1']:.4f}, ECE {b['ece']:.4f}  (what the router answers with; the lines above are the tier alone)")
        if report.get("unknown_intents"):
            lines.append(f"  unknown intents    {report['unknown_intents']:,} rows have an intent the model does not know (counted wrong)")
    for path in report.get("plots", []):
        lines.append(f"  plot               {path}")
    if report.get("latency_ms_median") is not None:
        lines.append(f"  median latency     {report['latency_ms_median'] * 1000:.1f} us per utterance")
    if report.get("curve"):
        lines += format_curve(report["curve"], report["handoffs"], report["last_tier_alone"])
    lines += ["", f"  {'intent':<24}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for intent, m in report["per_intent"].items():
        if m["support"] or m["precision"]:
            lines.append(f"  {intent:<24}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>10,}")
    if report["confusions"]:
        lines += ["", "  most frequent confusions (true -> predicted: count)"]
        for c in report["confusions"][:10]:
            lines.append(f"  {c['true']} -> {c['predicted']}: {c['count']}")
    return "\n".join(lines)


def format_curve(points: list[dict[str, Any]], chosen: Sequence[float], last_alone: dict[str, Any]) -> list[str]:
    """The hand-off curve as a table: each earlier tier at the hand-off, the last at its threshold;
    then the last tier alone."""
    tiers = list(points[0]["answered_by"])
    oos = points[0]["oos_recall"] is not None
    head = f"  {'hand-off':>9}  {'in-scope acc':>12}  {'answers right':>13}" + (f"  {'oos recall':>10}" if oos else "")
    head += "".join(f"  {name[:12]:>12}" for name in tiers) + f"  {'clarify':>8}  {'mean ms':>8}"
    lines = ["", "  hand-off curve: the share each tier answers (* the bundle's hand-off; 'clarify' is wrong for in-scope rows)", head]
    for p in [*points, {**last_alone, "handoff": "alone"}]:
        mark = "*" if p["handoff"] in chosen else " "
        line = f"  {p['handoff']:>8}{mark}  {p['accuracy']:>12.4f}  {p['answer_precision']:>13.4f}" + (f"  {p['oos_recall']:>10.4f}" if oos else "")
        line += "".join(f"  {p['answered_by'][name]:>12.1%}" for name in tiers) + f"  {p['clarify']:>8.1%}  {p['mean_ms']:>8.3f}"
        lines.append(line)
    return lines
