"""The statistics of an experiment: paired differences, bootstrap intervals, McNemar's
exact test and the number of pairs a decision needs.

Pairs are (task, replicate): the same task run on both arms. Replicates of one task are
not independent, so the bootstrap resamples *tasks* (clusters) with replacement and keeps
each task's pairs together; with a fixed seed the interval is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.stats import binomtest

DEFAULT_SEED = 20260101
"""The bootstrap's seed: the same results give the same interval."""


@dataclass(frozen=True)
class Interval:
    """A paired mean difference (candidate - baseline) with its bootstrap interval."""

    mean: float
    low: float
    high: float
    confidence: float
    pairs: int

    def to_dict(self) -> dict[str, float | int]:
        """The interval as JSON-ready values."""
        return {
            "mean": self.mean,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "pairs": self.pairs,
        }


def paired_bootstrap(
    tasks: list[str],
    differences: list[float],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Percentile bootstrap interval of the mean of ``differences``, resampling by task.

    ``tasks[i]`` names the task of pair ``i``; pairs of one task are drawn together.
    """
    if len(tasks) != len(differences) or not differences:
        raise ValueError("one task per difference, and at least one pair")
    names = sorted(set(tasks))
    index = {name: i for i, name in enumerate(names)}
    sums = np.zeros(len(names))
    counts = np.zeros(len(names))
    for task, diff in zip(tasks, differences, strict=True):
        sums[index[task]] += diff
        counts[index[task]] += 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(resamples, len(names)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(
        mean=float(sums.sum() / counts.sum()),
        low=float(low),
        high=float(high),
        confidence=confidence,
        pairs=len(differences),
    )


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test on paired pass/fail outcomes."""

    baseline_only: int
    """Pairs the baseline passed and the candidate failed (b)."""
    candidate_only: int
    """Pairs the candidate passed and the baseline failed (c)."""
    p_value: float
    """Two-sided exact p-value: a binomial test of b among b + c at 1/2 (1.0 when b + c = 0)."""

    def to_dict(self) -> dict[str, float | int]:
        """The test as JSON-ready values."""
        return {
            "baseline_only": self.baseline_only,
            "candidate_only": self.candidate_only,
            "p_value": self.p_value,
        }


def mcnemar_exact(baseline: list[bool], candidate: list[bool]) -> McNemar:
    """McNemar's exact test (``scipy.stats.binomtest`` on the discordant pairs)."""
    b = sum(1 for x, y in zip(baseline, candidate, strict=True) if x and not y)
    c = sum(1 for x, y in zip(baseline, candidate, strict=True) if y and not x)
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return McNemar(b, c, p)


def pairs_needed(
    discordant: int,
    pairs: int,
    *,
    effect: float,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Pairs needed to detect a pass-rate difference of ``effect`` (Connor, 1987).

    ``n = (z(1-a/2) * sqrt(pd) + z(power) * sqrt(pd - effect^2))^2 / effect^2`` where
    ``pd`` is the proportion of discordant pairs, estimated as ``(b + c + 1) / (n + 2)``
    (one pseudo-pair each way, so no discordance seen in a few pairs does not claim that
    none exists) and never below ``effect`` (the difference needs that much discordance).
    """
    if not 0 < effect < 1:
        raise ValueError("effect must be between 0 and 1")
    share = max((discordant + 1) / (pairs + 2), effect)
    z_alpha = NormalDist().inv_cdf(1 - alpha / 2)
    z_power = NormalDist().inv_cdf(power)
    root = z_alpha * math.sqrt(share) + z_power * math.sqrt(max(share - effect**2, 0.0))
    return math.ceil(root**2 / effect**2)
