"""Out-of-scope (OOS) detection, measured: AUROC, the threshold for an accuracy loss, OOS recall and
precision at a threshold, and each row's confidence as the router uses a tier.

Two cases (issue 7):

* The data has an OOS class (a label named ``oos``, or any name given with ``--oos-label``): it is
  trained like any intent and listed in the manifest's ``routing.oos_labels``
  (:mod:`builder.data.oos_labels`); the router answers "clarify" (reason ``out_of_scope``) when a
  tier confidently predicts it.
* It has none: the clarify threshold on the top calibrated probability is the only defence. To
  measure it, N intents are removed from training and validation and treated as OOS in test
  (:mod:`builder.evaluate.holdout`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from runtime_py import Router

from ..data.datasets import Example
from ..errors import BuildError
from ..train.metrics import softmax


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting
    half (the Mann-Whitney U statistic over average ranks)."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        raise BuildError("AUROC needs both positive and negative rows")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = (ends - counts + 1 + ends) / 2.0  # 1-based ranks start..end of each tie group
    ranks = average_rank[inverse]
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def threshold_for_loss(confidence: np.ndarray, correct: np.ndarray, max_loss: float) -> float:
    """The highest threshold t such that rejecting ``confidence < t`` turns at most
    ``max_loss`` of all rows from right to rejected."""
    confidence = np.asarray(confidence, dtype=np.float64)
    right = np.sort(confidence[np.asarray(correct, dtype=bool)])
    allowed = int(np.floor(max_loss * len(confidence) + 1e-9))
    if allowed >= len(right):
        return 1.0
    return float(right[allowed])


def oos_metrics(confidence: np.ndarray, correct: np.ndarray, is_oos: np.ndarray, threshold: float) -> dict[str, float]:
    """In-scope accuracy with and without rejection, and OOS recall/precision/F1, at `threshold`.
    A rejected in-scope row counts as wrong; `correct` is ignored for OOS rows."""
    confidence, correct, is_oos = np.asarray(confidence), np.asarray(correct, dtype=bool), np.asarray(is_oos, dtype=bool)
    inside = ~is_oos
    rejected = confidence < threshold
    accuracy = float(correct[inside].mean()) if inside.any() else 0.0
    with_rejection = float((correct & ~rejected)[inside].mean()) if inside.any() else 0.0
    recall = float(rejected[is_oos].mean()) if is_oos.any() else 0.0
    precision = float(is_oos[rejected].mean()) if rejected.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    overall = float(np.where(is_oos, rejected, correct & ~rejected).mean()) if len(is_oos) else 0.0
    return {
        "threshold": float(threshold),
        "in_scope_accuracy": accuracy,
        "in_scope_accuracy_with_rejection": with_rejection,
        "in_scope_accuracy_loss": accuracy - with_rejection,
        "in_scope_rejected": float(rejected[inside].mean()) if inside.any() else 0.0,
        "oos_recall": recall,
        "oos_precision": precision,
        "oos_f1": float(f1),
        "accuracy_with_oos_class": overall,
    }



def routed_confidence(probs: np.ndarray, oos: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confidence, correctness and answer (a label index) of each row as the router uses a tier: the
    answer is the best in-scope intent (`oos` marks the out-of-scope labels), and a row whose top
    label is out of scope gets confidence -1 (rejected at any threshold)."""
    answers = np.where(oos, -np.inf, probs).argmax(axis=1)
    confidence = np.where(oos[probs.argmax(axis=1)], -1.0, probs[np.arange(len(probs)), answers])
    return confidence, answers == targets, answers


@dataclass
class RoutedScores:
    """One tier's routed confidence, correctness and in-scope answer (a label) for each row."""

    confidence: np.ndarray
    correct: np.ndarray
    answers: list[str]


def routed_scores(router: Router, tier_name: str, rows: Sequence[Example]) -> RoutedScores:
    """Calibrated confidence and correctness of one tier (`routed_confidence`), one text per run as deployed."""
    tier = next(t for t in router.tiers if t.name == tier_name)
    index = {label: i for i, label in enumerate(tier.labels)}
    logits = np.asarray([tier.logits(r.text) for r in rows], dtype=np.float64).reshape(len(rows), len(tier.labels))
    targets = np.asarray([index.get(r.intent, -1) for r in rows])
    oos = np.asarray([label in router.oos_labels for label in tier.labels])
    confidence, correct, answers = routed_confidence(softmax(logits, tier.temperature), oos, targets)
    return RoutedScores(confidence, correct, [tier.labels[i] for i in answers])


def held_out_breakdown(intents: Sequence[str], held: Sequence[str], scored: RoutedScores, threshold: float, top: int = 2) -> list[dict[str, Any]]:
    """Per held-out intent: its test rows, the share rejected at `threshold` (its recall), the median
    confidence, and the in-scope intents its rows were most often answered as (which known intent
    absorbs it: the usual reason a held-out intent is hard to reject)."""
    out = []
    for name in held:
        rows = np.asarray([i == name for i in intents], dtype=bool)
        if not rows.any():
            continue
        conf = scored.confidence[rows]
        taken = Counter(a for a, r in zip(scored.answers, rows) if r).most_common(top)
        out.append({
            "intent": name,
            "n": int(rows.sum()),
            "recall": float((conf < threshold).mean()),
            "median_confidence": float(np.median(conf)),
            "answered_as": [{"intent": a, "count": c} for a, c in taken],
        })
    return out
