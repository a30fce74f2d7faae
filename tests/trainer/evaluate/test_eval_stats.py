"""Wilson intervals, exact McNemar and percentiles against values worked out independently."""

from __future__ import annotations

import math

import pytest

from trainer.evaluate.stats import Rate, mcnemar_exact, percentile, wilson

Z = 1.959963984540054


def wilson_by_roots(k: int, n: int) -> tuple[float, float]:
    """The interval as the two p where |k/n - p| = z·sqrt(p(1-p)/n): roots of a quadratic in p."""
    phat = k / n
    a = 1 + Z * Z / n
    b = -(2 * phat + Z * Z / n)
    c = phat * phat
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


@pytest.mark.parametrize("k,n", [(7, 10), (0, 10), (10, 10), (97, 100), (1, 3)])
def test_wilson(k, n):
    assert wilson(k, n) == pytest.approx(wilson_by_roots(k, n), abs=1e-12)


def test_wilson_known_value():
    low, high = wilson(7, 10)
    assert (round(low, 4), round(high, 4)) == (0.3968, 0.8922)  # the textbook figure for 7 of 10


def test_rate():
    assert Rate(7, 10).value == 0.7 and Rate(0, 0).value is None and Rate(0, 0).interval is None


def test_mcnemar_exact():
    assert mcnemar_exact(4, 1) == pytest.approx(2 * (1 + 5) / 2**5)  # 0.375
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 2**6)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    scipy_stats = pytest.importorskip("scipy.stats")
    for b, c in [(1, 9), (12, 4), (0, 15), (7, 8)]:
        assert mcnemar_exact(b, c) == pytest.approx(scipy_stats.binomtest(b, b + c, 0.5).pvalue)


def test_percentile_nearest_rank():
    values = [50, 10, 40, 20, 30]
    assert percentile(values, 50) == 30 and percentile(values, 95) == 50 and percentile(values, 0) == 10
    assert percentile([], 50) is None
