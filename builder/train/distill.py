"""Knowledge distillation: what a student learns from a teacher besides the gold labels.

* ``transfer_texts``: the training utterances plus augmented ones for the teacher to label: noisy
  copies (``builder.data.noise``: typos, dropped words, text-speak, reordering, casing) and splices
  (the start of one utterance and the end of another), whose soft labels carry what the teacher
  thinks of text between intents, which gold labels cannot say.
* ``distill_loss``: per row, ``T^2 * KL(teacher || student)`` at temperature T (Hinton et al.,
  2015; the T^2 keeps its gradients on the scale of the cross-entropy's).
"""

from __future__ import annotations

import random
from typing import Sequence

import torch
from torch.nn import functional as F

from ..data.noise import Noise

SPLICE_SHARE = 0.3  # of the augmented utterances; the rest are noisy copies


def splice(first: str, second: str, rng: random.Random) -> str:
    """The first half (or so) of one utterance's words, then the second half of another's."""
    a, b = first.split(), second.split()
    if len(a) < 2 or len(b) < 2:
        return first
    return " ".join(a[: rng.randint(1, len(a) - 1)] + b[rng.randint(1, len(b) - 1) :])


def transfer_texts(texts: Sequence[str], copies: int, seed: int) -> list[str]:
    """`copies` augmented utterances per training utterance (deterministic for a seed), in order."""
    rng = random.Random(seed)
    noise = Noise(rng)
    out: list[str] = []
    for _ in range(copies):
        for text in texts:
            if len(texts) > 1 and rng.random() < SPLICE_SHARE:
                out.append(splice(text, texts[rng.randrange(len(texts))], rng))
            else:
                out.append(noise(text))
    return out


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))`` for each row."""
    teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    student = F.log_softmax(student_logits / temperature, dim=-1)
    return (teacher.exp() * (teacher - student)).sum(-1) * temperature**2
