"""benchmarks/bow_baseline.py: the paired comparison against scikit-learn, checked against scipy."""

from __future__ import annotations

import pytest

from benchmarks.bow_baseline import mcnemar, table


@pytest.mark.parametrize("only_ours, only_theirs, both", [(0, 0, 5), (3, 3, 0), (2, 7, 10), (12, 4, 100), (0, 9, 1), (40, 25, 3000)])
def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_texts(only_ours: int, only_theirs: int, both: int) -> None:
    from scipy.stats import binomtest

    ours = [True] * only_ours + [False] * only_theirs + [True] * both + [False] * 4
    theirs = [False] * only_ours + [True] * only_theirs + [True] * both + [False] * 4
    got = mcnemar(ours, theirs)
    assert (got["only_ours"], got["only_theirs"]) == (only_ours, only_theirs)
    n = only_ours + only_theirs
    assert got["p"] == pytest.approx(binomtest(only_ours, n, 0.5).pvalue if n else 1.0, rel=1e-9)


def test_the_table_shows_the_paired_counts() -> None:
    row = {"dataset": "d", "model": "ours", "test": 0.9, "extra": 0.8, "features": 10, "bytes": 2**20, "gzip_bytes": 2**19,
           "us_test": 1.0, "us_16": 2.0, "seconds": 3.0,
           "vs_baseline": {"test": {"only_ours": 5, "only_theirs": 2, "p": 0.453125}, "extra": {"only_ours": 0, "only_theirs": 1, "p": 1.0}}}
    line = table([row]).splitlines()[-1]
    assert "test: +5 / -2, p = 0.45; hand-written: +0 / -1, p = 1.00" in line
