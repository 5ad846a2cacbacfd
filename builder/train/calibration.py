"""Temperature scaling: one scalar T fitted on held-out logits by minimising the NLL."""

from __future__ import annotations

import math

import numpy as np

from .metrics import negative_log_likelihood, softmax

_LOW, _HIGH = math.log(0.02), math.log(50.0)
THRESHOLD_FLOOR, THRESHOLD_CEILING = 0.5, 0.95  # the range a clarify threshold is chosen in


def fit_temperature(logits: np.ndarray, targets: np.ndarray, tolerance: float = 1e-4) -> float:
    """T > 0 minimising ``NLL(softmax(logits / T))``. NLL is convex in 1/T, so it is unimodal
    in log T and a golden-section search over log T in [0.02, 50] finds the optimum.

    Without a single error in the data there is nothing to fit (sharper is always "better"):
    T stays 1.0 and the caller should say so."""
    if len(targets) == 0:
        return 1.0
    logits = np.asarray(logits, dtype=np.float64)
    if (logits.argmax(axis=1) == targets).all():
        # No errors: the NLL keeps falling as T -> 0, so the data cannot say how sure to be.
        return 1.0

    def nll(log_t: float) -> float:
        return negative_log_likelihood(softmax(logits, math.exp(log_t)), targets)

    ratio = (math.sqrt(5) - 1) / 2
    a, b = _LOW, _HIGH
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    while b - a > tolerance:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return float(math.exp((a + b) / 2))


def choose_threshold(
    probs: np.ndarray,
    targets: np.ndarray,
    target_precision: float = 0.97,
    floor: float = THRESHOLD_FLOOR,
    ceiling: float = THRESHOLD_CEILING,
) -> tuple[float, float, float]:
    """The lowest confidence threshold in [floor, ceiling] whose answers on held-out data are right
    at least `target_precision` of the time. Returns (threshold, coverage, accuracy of the answers).

    The floor keeps some room for "clarify" even when the held-out data, which has no
    out-of-scope text, would allow answering everything."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == targets
    chosen = ceiling
    for t in np.round(np.arange(floor, ceiling + 1e-9, 0.01), 2):
        answered = confidence >= t
        if answered.any() and correct[answered].mean() >= target_precision:
            chosen = float(t)
            break
    answered = confidence >= chosen
    coverage = float(answered.mean()) if len(targets) else 0.0
    accuracy = float(correct[answered].mean()) if answered.any() else 0.0
    return chosen, coverage, accuracy
