"""The capacity plan: sweep concurrency, find the highest level meeting the SLO, and turn it
into developers per host and the hardware's payback.

The search is vLLM's SLA sweep in small: levels doubling from 1 until one breaks the SLO (or
the ceiling is reached), then bisection between the last level that met it and the first that
did not. Given levels (``levels=[1, 2, 4]``) are measured as given instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from orchestra.capacity.errors import InvalidSweep
from orchestra.capacity.ledger_load import CloudSpend, PeakLoad
from orchestra.capacity.measure import LevelResult, level_json

__all__ = ["SLO", "CapacityPlan", "Payback", "payback", "sweep"]

Measure = Callable[[int], Awaitable[LevelResult]]


@dataclass(frozen=True, slots=True)
class SLO:
    """A level meets the SLO when the ``percentile`` of its end-to-end latency is at most
    ``seconds`` and no more than ``max_error_rate`` of its requests failed."""

    seconds: float = 5.0
    percentile: float = 90.0
    max_error_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.seconds <= 0 or not 0 < self.percentile <= 100:
            raise InvalidSweep(
                f"an SLO of p{self.percentile} ≤ {self.seconds} s cannot be met",
                hint="give a positive latency and a percentile in (0, 100]",
            )
        if not 0 <= self.max_error_rate < 1:
            raise InvalidSweep(
                f"max error rate {self.max_error_rate} is not in [0, 1)",
                hint="e.g. 0.01 for at most 1% failed requests",
            )

    def met_by(self, level: LevelResult) -> bool:
        """Whether ``level`` meets this SLO."""
        latency = level.e2e(self.percentile)
        return (
            latency is not None
            and latency <= self.seconds
            and level.error_rate <= self.max_error_rate
        )

    def describe(self) -> str:
        """``p90 e2e ≤ 5 s, errors ≤ 0%``."""
        return (
            f"p{self.percentile:g} e2e ≤ {self.seconds:g} s, "
            f"errors ≤ {self.max_error_rate * 100:g}%"
        )


@dataclass(frozen=True, slots=True)
class Payback:
    """Months for a host to pay for itself from the cloud spend it replaces."""

    months: float | None
    reason: str | None = None
    """Why ``months`` is unknown (or infinite), when it is."""
    monthly_saving_usd: float | None = None


def payback(
    host_price_usd: float | None,
    developers: int | None,
    cloud: CloudSpend,
    running_usd_month: float = 0.0,
) -> Payback:
    """The hardware's payback: its price over the monthly cloud spend of the developers it
    serves, less what it costs to run."""
    if host_price_usd is None:
        return Payback(None, "no host price given (--host-price)")
    if developers is None:
        return Payback(None, "developers per host unknown")
    if cloud.per_developer_month_usd is None:
        return Payback(None, cloud.reason or "no cloud spend recorded in the ledger")
    saving = developers * cloud.per_developer_month_usd - running_usd_month
    if saving <= 0:
        return Payback(None, "the host saves nothing: it never pays back", round(saving, 2))
    return Payback(host_price_usd / saving, None, round(saving, 2))


@dataclass(frozen=True)
class CapacityPlan:
    """What a sweep found, and what it means for one host."""

    slo: SLO
    levels: list[LevelResult]
    peak: PeakLoad
    cloud: CloudSpend
    payback: Payback
    target: dict[str, Any] = field(default_factory=dict)
    """What was measured: gateway URL, model, request shape."""

    @property
    def best(self) -> LevelResult | None:
        """The highest level meeting the SLO (``None``: not even one client does)."""
        passing = [level for level in self.levels if self.slo.met_by(level)]
        return max(passing, key=lambda level: level.concurrency) if passing else None

    @property
    def max_concurrency(self) -> int | None:
        """The highest concurrency meeting the SLO."""
        best = self.best
        return None if best is None else best.concurrency

    @property
    def goodput(self) -> float | None:
        """Requests per second within the SLO at the best level."""
        best = self.best
        return None if best is None else best.goodput(self.slo.seconds)

    @property
    def developers_per_host(self) -> int | None:
        """Developers whose peak-hour load the host serves within the SLO; ``None`` when
        the ledger has no per-developer history or no level met the SLO."""
        rate = self.peak.per_developer_rps
        goodput = self.goodput
        if rate is None or goodput is None or rate <= 0:
            return None
        return int(goodput / rate)

    def to_json(self) -> dict[str, Any]:
        """The plan for ``--json``."""
        return {
            "target": self.target,
            "slo": {
                "seconds": self.slo.seconds,
                "percentile": self.slo.percentile,
                "max_error_rate": self.slo.max_error_rate,
            },
            "levels": [level_json(level, self.slo.seconds) for level in self.levels],
            "max_concurrency": self.max_concurrency,
            "goodput_rps": None if self.goodput is None else round(self.goodput, 3),
            "peak_load": self.peak.to_json(),
            "developers_per_host": self.developers_per_host,
            "cloud_spend": self.cloud.to_json(),
            "payback": {
                "months": None if self.payback.months is None else round(self.payback.months, 3),
                "monthly_saving_usd": self.payback.monthly_saving_usd,
                "reason": self.payback.reason,
            },
        }


async def sweep(
    measure: Measure,
    slo: SLO,
    *,
    levels: list[int] | None = None,
    ceiling: int = 64,
) -> list[LevelResult]:
    """Measure the given ``levels``, or search for the highest level meeting ``slo`` up to
    ``ceiling``; the results in order of concurrency."""
    if levels is not None:
        if not levels or any(level < 1 for level in levels):
            raise InvalidSweep(
                f"concurrency levels {levels} are not all positive",
                hint="e.g. --concurrency 1,2,4,8",
            )
        return [await measure(level) for level in sorted(set(levels))]
    if ceiling < 1:
        raise InvalidSweep(f"ceiling {ceiling} is below 1", hint="e.g. --max-concurrency 32")
    results: dict[int, LevelResult] = {}

    async def met(level: int) -> bool:
        if level not in results:
            results[level] = await measure(level)
        return slo.met_by(results[level])

    good, bad = 0, None
    level = 1
    while level <= ceiling:
        if not await met(level):
            bad = level
            break
        good = level
        if level == ceiling:
            break
        level = min(level * 2, ceiling)
    if bad is not None:
        while bad - good > 1:
            middle = (good + bad) // 2
            if await met(middle):
                good = middle
            else:
                bad = middle
    return [results[level] for level in sorted(results)]
