"""Classification and calibration metrics over probability matrices (numpy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

ECE_BINS = 15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class CalibrationBins:
    """Equal-width confidence bins: rows, accuracy and mean confidence per bin (0 when empty)."""

    edges: np.ndarray
    counts: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray

    @property
    def ece(self) -> float:
        total = self.counts.sum()
        return float((self.counts * np.abs(self.accuracy - self.confidence)).sum() / total) if total else 0.0


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> CalibrationBins:
    """Bin b holds confidences in (edges[b], edges[b + 1]]; the first bin also holds 0."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    safe = np.maximum(counts, 1)
    accuracy = np.bincount(which, weights=correct, minlength=bins) / safe
    mean_conf = np.bincount(which, weights=confidence, minlength=bins) / safe
    return CalibrationBins(edges, counts, accuracy, mean_conf)


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with equal-width confidence bins: sum over bins of |accuracy - confidence| weighted by size."""
    if len(targets) == 0:
        return 0.0
    return calibration_bins(probs.max(axis=1), probs.argmax(axis=1) == targets, bins).ece


def negative_log_likelihood(probs: np.ndarray, targets: np.ndarray) -> float:
    picked = probs[np.arange(len(targets)), targets]
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())


@dataclass
class ClassReport:
    intent: str
    precision: float
    recall: float
    f1: float
    support: int


def evaluate_logits(logits: np.ndarray, targets: np.ndarray, labels: Sequence[str], temperature: float) -> dict[str, Any]:
    """Accuracy and ECE before/after temperature; rows whose intent the model lacks count as errors."""
    if len(targets) == 0:
        return {"n": 0}
    known = targets >= 0
    preds = logits.argmax(axis=1)
    report = classification_report(preds[known], targets[known], labels)
    report["n"] = len(targets)
    report["accuracy"] = float((preds == targets).mean())
    report["unknown_intents"] = int((~known).sum())
    report["ece_uncalibrated"] = expected_calibration_error(softmax(logits[known]), targets[known])
    report["ece"] = expected_calibration_error(softmax(logits[known], temperature), targets[known])
    report["temperature"] = temperature
    return report


def classification_report(preds: np.ndarray, targets: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 (over intents present in the data or predicted), per-intent P/R/F1, confusions."""
    n = len(targets)
    k = len(labels)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (targets, preds), 1)
    per_class: list[ClassReport] = []
    for i, label in enumerate(labels):
        tp = confusion[i, i]
        predicted = confusion[:, i].sum()
        support = confusion[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(ClassReport(label, float(precision), float(recall), float(f1), int(support)))
    active = [c for i, c in enumerate(per_class) if c.support or confusion[:, i].sum()]
    pairs = [
        (labels[i], labels[j], int(confusion[i, j]))
        for i in range(k)
        for j in range(k)
        if i != j and confusion[i, j]
    ]
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    return {
        "n": n,
        "accuracy": float((preds == targets).mean()) if n else 0.0,
        "macro_f1": float(np.mean([c.f1 for c in active])) if active else 0.0,
        "per_intent": {c.intent: {"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support} for c in per_class},
        "confusions": [{"true": t, "predicted": p, "count": c} for t, p, c in pairs],
    }
