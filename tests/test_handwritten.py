"""The hand-written finance evaluation sets (models/eval/) stay out of the training pipeline:
no row is a template expansion or shares four consecutive words with one."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from builder.data.datasets import read_jsonl
from builder.data.templates import load_templates, template_texts, word_ngrams

EVAL = Path(__file__).resolve().parent.parent / "models" / "eval"
IN_SCOPE = EVAL / "finance_handwritten.jsonl"
OUT_OF_SCOPE = EVAL / "finance_handwritten_oos.jsonl"


@pytest.mark.parametrize("path", [IN_SCOPE, OUT_OF_SCOPE], ids=lambda p: p.name)
def test_handwritten_set_shares_no_wording_with_the_templates(path: Path) -> None:
    rows = read_jsonl(path)
    texts = list(template_texts(load_templates()))
    expansions = {t.lower() for t in texts}
    grams = word_ngrams(texts, 4)
    assert not [r.text for r in rows if r.text.lower() in expansions]
    assert not [r.text for r in rows if word_ngrams([r.text], 4) & grams]
    assert len({r.text.lower() for r in rows}) == len(rows), "duplicate rows"


def test_handwritten_sets_cover_every_intent() -> None:
    templates = load_templates()
    in_scope = Counter(r.intent for r in read_jsonl(IN_SCOPE))
    assert sum(in_scope.values()) >= 100
    assert set(in_scope) == set(templates.intents) - {"oos"}
    assert all(n >= 10 for n in in_scope.values()), in_scope
    oos = read_jsonl(OUT_OF_SCOPE)
    assert len(oos) >= 20 and {r.intent for r in oos} == {"oos"}
