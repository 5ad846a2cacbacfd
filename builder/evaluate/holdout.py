"""The held-out intents protocol of ``builder eval --holdout-intents``: which intents are held out, and
the report on the tier retrained without them (the retraining is :mod:`builder.pipeline.holdout`).

Protocol (no OOS label is ever used to choose anything):

1. N intents are drawn with ``random.Random(seed).sample`` from the sorted training intents.
2. The tier is retrained, with the recipe recorded in the given bundle, on train minus those
   intents; the best epoch and the temperature come from validation minus those intents.
3. The threshold is the highest confidence at which the in-scope validation answers lose at most
   ``max_inscope_loss`` of accuracy to rejection (correct answers below the threshold / rows).
4. Test (all of it) is scored with the shipped model: held-out rows are OOS.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from runtime_py import Router

from ..data.datasets import Example
from ..data.oos_labels import DEFAULT_OOS_LABELS
from ..errors import BuildError
from .oos import auroc, held_out_breakdown, oos_metrics, routed_scores, threshold_for_loss


def pick_holdout(labels: Sequence[str], n: int, seed: int) -> list[str]:
    """`n` intents drawn reproducibly from `labels` (OOS-class labels are never drawn)."""
    candidates = sorted(set(labels) - set(DEFAULT_OOS_LABELS))
    if not 1 <= n <= len(candidates) - 2:
        raise BuildError(f"--holdout-intents {n}: choose 1..{len(candidates) - 2} (the data has {len(candidates)} intents; 2 must stay)")
    return sorted(random.Random(seed).sample(candidates, n))


@dataclass
class HoldoutResult:
    report: dict[str, Any]
    test_confidence: np.ndarray
    test_correct: np.ndarray
    test_is_oos: np.ndarray


def holdout_report(router: Router, tier: str, held: Sequence[str], inside: Mapping[str, Sequence[Example]], test: Sequence[Example],
                   max_inscope_loss: float, about: Mapping[str, Any]) -> HoldoutResult:
    """Score the retrained `tier` of `router`: the threshold on `inside` (the splits without the
    `held` intents) validation rows, then every `test` row, held-out ones as OOS. The report
    starts with `about` (what was retrained, and how)."""
    val = routed_scores(router, tier, inside["val"])
    scored = routed_scores(router, tier, test)
    router_threshold = router.thresholds[tier][0]
    is_oos = np.asarray([r.intent in held for r in test])
    threshold = max(0.0, threshold_for_loss(val.confidence, val.correct, max_inscope_loss))  # out-of-scope answers are always rejected
    report: dict[str, Any] = {
        **about,
        "sizes": {"train": len(inside["train"]), "val": len(inside["val"]), "test_in_scope": int((~is_oos).sum()), "test_oos": int(is_oos.sum())},
        "threshold_rule": f"highest threshold losing <= {max_inscope_loss:g} in-scope val accuracy (val without held-out intents)",
        "val_in_scope_accuracy": float(val.correct.mean()) if len(val.correct) else 0.0,
        "auroc": auroc(1.0 - scored.confidence, is_oos),
        **oos_metrics(scored.confidence, scored.correct, is_oos, threshold),
        "at_router_threshold": oos_metrics(scored.confidence, scored.correct, is_oos, router_threshold),
        "per_held_out_intent": held_out_breakdown([r.intent for r in test], held, scored, threshold),
    }
    return HoldoutResult(report, scored.confidence, scored.correct, is_oos)


def plot_holdout(result: HoldoutResult, plot_dir: Path) -> list[str]:
    """A histogram of the test rows' confidence, in scope against held out, and the in-scope rows'
    reliability diagram (``eval --holdout-intents --plot``)."""
    from .plots import oos_histogram, reliability_diagram

    report, inside = result.report, ~result.test_is_oos
    tier = report["tier"]
    title = f"{tier}, {Path(report['data']).name} without {len(report['held_out'])} intents"
    return [
        str(oos_histogram(result.test_confidence, result.test_is_oos, report["threshold"], plot_dir / f"{tier}-holdout-oos.png", title)),
        str(reliability_diagram(result.test_confidence[inside], result.test_correct[inside], plot_dir / f"{tier}-holdout-reliability.png",
                                f"{title}: in-scope test rows")),
    ]


def format_holdout(report: dict[str, Any]) -> str:
    def block(m: Mapping[str, float]) -> list[str]:
        return [
            f"  threshold            {m['threshold']:.4f}",
            f"  in-scope accuracy    {m['in_scope_accuracy']:.4f} without rejection, {m['in_scope_accuracy_with_rejection']:.4f} with "
            f"(loss {100 * m['in_scope_accuracy_loss']:.2f} points; {m['in_scope_rejected']:.3f} of in-scope rows rejected)",
            f"  OOS recall           {m['oos_recall']:.4f}",
            f"  OOS precision        {m['oos_precision']:.4f}  (F1 {m['oos_f1']:.4f})",
            f"  accuracy, OOS as a class {m['accuracy_with_oos_class']:.4f}",
        ]

    s = report["sizes"]
    lines = [
        f"{report['tier']} tier retrained without {len(report['held_out'])} intents on {report['data']}",
        f"  held out             {', '.join(report['held_out'])}",
        f"  rows                 train {s['train']:,}, val {s['val']:,}; test {s['test_in_scope']:,} in scope + {s['test_oos']:,} OOS",
        f"  AUROC (max softmax)  {report['auroc']:.4f}",
        "",
        f"at the threshold chosen on val ({report['threshold_rule']}):",
        *block(report),
        "",
        "at the router's threshold for this tier:",
        *block(report["at_router_threshold"]),
    ]
    per = report.get("per_held_out_intent") or []
    if per:
        width = max(len(p["intent"]) for p in per)
        lines += ["", "per held-out intent, at the threshold chosen on val (recall; median confidence; answered as):"]
        for p in sorted(per, key=lambda p: p["recall"]):
            taken = ", ".join(f"{a['intent']} {a['count']}" for a in p["answered_as"])
            lines.append(f"  {p['intent']:<{width}}  {p['recall']:.2f} of {p['n']};  {p['median_confidence']:.2f};  {taken}")
    return "\n".join(lines)
