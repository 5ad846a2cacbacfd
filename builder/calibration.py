"""Temperature scaling: one scalar T fitted on held-out logits by minimising the NLL."""

from __future__ import annotations

import math

import numpy as np

from .metrics import negative_log_likelihood, softmax

_LOW, _HIGH = math.log(0.02), math.log(50.0)


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
