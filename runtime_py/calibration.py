"""Temperature-scaled softmax: how every tier turns logits into calibrated confidences."""

from __future__ import annotations

import math
from typing import Sequence


def softmax(logits: Sequence[float], temperature: float = 1.0) -> list[float]:
    """Probabilities of ``softmax(logits / temperature)``; stable for any finite logits."""
    if not logits:
        return []
    top = max(logits)
    exps = [math.exp((z - top) / temperature) for z in logits]
    total = sum(exps)
    return [e / total for e in exps]
