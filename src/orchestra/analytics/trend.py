"""The Mann-Kendall test for a monotonic trend, so that an early warning needs a real
trend rather than one bad day.

Non-parametric: it asks only whether later values tend to be larger (or smaller) than
earlier ones. ``S`` sums the signs of every later-minus-earlier difference; its variance is
corrected for ties; the two-sided p-value comes from the normal approximation with a
continuity correction (Mann 1945, Kendall 1975; as in Hipel & McLeod, ch. 23). Sen's slope
(the median of pairwise slopes) says how fast.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

MIN_POINTS = 4
"""Fewer points cannot show a significant trend at any usual level."""


@dataclass(frozen=True)
class Trend:
    """The outcome of the test on one series."""

    n: int
    s: int
    variance: float
    z: float
    p_value: float
    """Two-sided."""
    slope: float
    """Sen's slope, per step of the series."""

    def rising(self, alpha: float = 0.05) -> bool:
        """A significant upward trend at level ``alpha``."""
        return self.n >= MIN_POINTS and self.p_value < alpha and self.s > 0

    def falling(self, alpha: float = 0.05) -> bool:
        """A significant downward trend at level ``alpha``."""
        return self.n >= MIN_POINTS and self.p_value < alpha and self.s < 0


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def mann_kendall(values: Sequence[float]) -> Trend:
    """Mann-Kendall's ``S``, its tie-corrected variance, ``Z``, p-value and Sen's slope."""
    n = len(values)
    s = sum(_sign(values[j] - values[i]) for i in range(n) for j in range(i + 1, n))
    ties = sum(t * (t - 1) * (2 * t + 5) for t in Counter(values).values() if t > 1)
    variance = (n * (n - 1) * (2 * n + 5) - ties) / 18
    if variance <= 0:
        z = 0.0
    elif s > 0:
        z = (s - 1) / math.sqrt(variance)
    elif s < 0:
        z = (s + 1) / math.sqrt(variance)
    else:
        z = 0.0
    p_value = math.erfc(abs(z) / math.sqrt(2))  # 2 * (1 - Phi(|z|))
    slopes = [(values[j] - values[i]) / (j - i) for i in range(n) for j in range(i + 1, n)]
    return Trend(n, s, variance, z, p_value, statistics.median(slopes) if slopes else 0.0)
