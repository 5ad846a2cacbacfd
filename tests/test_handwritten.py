"""The hand-written finance evaluation set (models/eval/) stays out of the training pipeline:
no row is a template expansion or shares four consecutive words with one."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from builder.datasets import read_jsonl
from builder.templates import load_templates, template_texts, word_ngrams

HANDWRITTEN = Path(__file__).resolve().parent.parent / "models" / "eval" / "finance_handwritten.jsonl"


def test_handwritten_set_shares_no_wording_with_the_templates() -> None:
    templates = load_templates()
    rows = read_jsonl(HANDWRITTEN)
    texts = list(template_texts(templates))
    expansions = {t.lower() for t in texts}
    grams = word_ngrams(texts, 4)
    assert len(rows) >= 100
    assert not [r.text for r in rows if r.text.lower() in expansions]
    assert not [r.text for r in rows if word_ngrams([r.text], 4) & grams]
    assert len({r.text.lower() for r in rows}) == len(rows), "duplicate rows"


def test_handwritten_set_covers_every_intent() -> None:
    templates = load_templates()
    counts = Counter(r.intent for r in read_jsonl(HANDWRITTEN))
    assert set(counts) <= set(templates.intents) | {"oos"}
    assert all(counts[intent] >= 10 for intent in templates.intents), counts
