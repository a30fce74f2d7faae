"""The statistics an eval of a few hundred cases can carry: Wilson intervals for rates, the exact
McNemar test for two endpoints on the same cases, nearest-rank percentiles. Plain `math`, no SciPy.

Why these: a normal-approximation interval is wrong near 0 and 1 and for small n, exactly where
eval sets live (a tuned model at 97 of 100); Wilson's stays inside [0, 1] and keeps its coverage.
Two endpoints answer the same cases, so their results are paired: only the cases where they
disagree say anything about which is better, and with few of those the binomial test on the
discordant pairs (exact McNemar) is the one to use, not a chi-square approximation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z_95 = 1.959963984540054
"""The standard normal's 97.5th percentile: two-sided 95%."""


@dataclass(frozen=True)
class Rate:
    """k of n, with its 95% Wilson interval; n = 0 has no rate."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.k, self.n) if self.n else None

    def to_dict(self) -> dict[str, object]:
        return {"k": self.k, "n": self.n, "rate": self.value, "ci95": self.interval}

    def __str__(self) -> str:
        if not self.n:
            return "-"
        low, high = wilson(self.k, self.n)
        return f"{self.k / self.n:.1%} [{low:.1%}, {high:.1%}] ({self.k}/{self.n})"


def wilson(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of k successes in n trials."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"wilson needs 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (the binomial test of
    min(b, c) in b + c trials at one half); 1.0 when they never disagree."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (as the store's `stats` computes it); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(pct / 100 * len(ordered)), 1) - 1]
