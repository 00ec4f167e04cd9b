"""Return on the AI spend, from recorded data, with its assumptions said.

    ROI = (hours saved x cost per developer-hour - AI cost) / AI cost
    hours saved = (baseline median cycle time - median cycle time since adoption)
                  x effort share x changes merged in the period

Measured: the AI cost (the unit's ledger in the period), the cycle times before adoption
(the baseline) and after it, and the number of changes. Assumed, and given by the user: the
loaded cost of a developer-hour, and the share of a change's elapsed cycle time that is paid
developer effort. Cycle time comes from the pull/merge request records when both periods
have enough of them, otherwise from git history's merges (``gitmerges``). The interval is a
percentile bootstrap over the measured cycle times (fixed seed, so a report is
reproducible). Any missing input makes the figure unknown, never a guess; ``docs/roi.md``
sets this beside the design documents' formula.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestra.analytics.dataset import Dataset, aware, ledger_filter, load_dataset
from orchestra.analytics.errors import AnalyticsError
from orchestra.analytics.gitmerges import merge_time_pairs
from orchestra.analytics.kpis import NANO, cycle_time_pairs, lead_time_pairs
from orchestra.analytics.scope import Period, Principal, Scope, check_visible, resolve_scope
from orchestra.org import load_org
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayLedgerEntry as Ledger

MIN_SAMPLES = 5
"""Fewest cycle times per period a median change is computed from."""
RESAMPLES = 2000
SEED = 13
LEVEL = 0.95

FORMULA = (
    "(hours saved x cost per developer-hour - AI cost) / AI cost; hours saved = "
    "(baseline median cycle time - median cycle time since adoption) x effort share "
    "x changes merged in the period"
)


@dataclass(frozen=True)
class Assumptions:
    """What the user states, not what was measured."""

    cost_per_developer_hour: float | None = None
    """Loaded cost of one developer-hour, USD."""
    effort_share: float | None = None
    """Share (0..1] of a change's elapsed cycle time that is paid developer effort."""

    def missing(self) -> list[str]:
        """The assumptions not given."""
        return [k for k, v in asdict(self).items() if v is None]


@dataclass(frozen=True)
class TimeChange:
    """A time measured before and since adoption."""

    measure: str
    source: str
    """``changes`` (pull/merge requests), ``git`` (merge commits) or ``none``."""
    baseline_median: float | None
    median: float | None
    baseline_rows: tuple[str, ...]
    rows: tuple[str, ...]
    baseline_hours: tuple[float, ...] = ()
    hours: tuple[float, ...] = ()

    @property
    def reduction(self) -> float | None:
        """Hours less than the baseline (negative: slower); ``None`` when unknown."""
        if self.baseline_median is None or self.median is None:
            return None
        return self.baseline_median - self.median


@dataclass(frozen=True)
class ROIReport:
    """ROI for a unit and period, with every input and whether it was measured."""

    unit: str
    period: Period
    baseline: Period | None
    adopted_at: datetime | None
    ai_cost: float
    ledger_rows: int
    cycle_time: TimeChange
    lead_time: TimeChange
    assumptions: Assumptions
    changes: int
    hours_saved: float | None
    value: float | None
    roi: float | None
    interval: tuple[float, float] | None
    unknown: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""

        def period(p: Period | None) -> dict[str, str] | None:
            return None if p is None else {"start": p.start.isoformat(), "end": p.end.isoformat()}

        def change(t: TimeChange) -> dict[str, Any]:
            return {
                "source": t.source,
                "baseline_median_hours": t.baseline_median,
                "median_hours": t.median,
                "reduction_hours": t.reduction,
                "baseline_rows": list(t.baseline_rows),
                "rows": list(t.rows),
            }

        return {
            "unit": self.unit,
            "formula": FORMULA,
            "period": period(self.period),
            "baseline": period(self.baseline),
            "adopted_at": None if self.adopted_at is None else self.adopted_at.isoformat(),
            "measured": {
                "ai_cost_usd": self.ai_cost,
                "ledger_rows": self.ledger_rows,
                "cycle_time": change(self.cycle_time),
                "lead_time": change(self.lead_time),
                "changes": self.changes,
            },
            "assumed": asdict(self.assumptions),
            "hours_saved": self.hours_saved,
            "value_usd": self.value,
            "roi": self.roi,
            "interval": None if self.interval is None else list(self.interval),
            "level": LEVEL,
            "unknown": self.unknown,
        }


def adoption(session: Session, scope: Scope) -> datetime | None:
    """The unit's first ledger entry: when it started using Orchestra."""
    first = session.scalar(select(func.min(Ledger.started_at)).where(ledger_filter(scope)))
    return aware(first)


def bootstrap_interval(
    baseline: list[float], after: list[float], statistic: Any, *, seed: int = SEED
) -> tuple[float, float]:
    """The central :data:`LEVEL` percentile interval of ``statistic(median reduction)``
    over :data:`RESAMPLES` resamples of both samples (with replacement, fixed seed)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible bootstrap, not a secret
    values = sorted(
        statistic(
            statistics.median(rng.choices(baseline, k=len(baseline)))
            - statistics.median(rng.choices(after, k=len(after)))
        )
        for _ in range(RESAMPLES)
    )
    tail = (1 - LEVEL) / 2
    low = values[int(tail * (RESAMPLES - 1))]
    high = values[round((1 - tail) * (RESAMPLES - 1))]
    return float(low), float(high)


def _time_change(
    measure: str, source: str, before: list[tuple[str, float]], after: list[tuple[str, float]]
) -> TimeChange:
    enough = len(before) >= MIN_SAMPLES and len(after) >= MIN_SAMPLES
    return TimeChange(
        measure,
        source if enough else "none",
        statistics.median(v for _, v in before) if enough else None,
        statistics.median(v for _, v in after) if enough else None,
        tuple(r for r, _ in before),
        tuple(r for r, _ in after),
        tuple(v for _, v in before),
        tuple(v for _, v in after),
    )


def _cycle_change(session: Session, a: Dataset, b: Dataset) -> TimeChange:
    """Cycle times of the pull/merge requests when both periods have enough, else of the
    git merges."""
    scope, before, after = a.scope, a.period, b.period
    from_changes = _time_change("cycle_time", "changes", cycle_time_pairs(a), cycle_time_pairs(b))
    if from_changes.source != "none":
        return from_changes
    git_before = merge_time_pairs(session, scope, before)
    git_after = merge_time_pairs(session, scope, after)
    return _time_change("cycle_time", "git", git_before, git_after)


def _unknown(
    adopted: datetime | None, cost: float, cycle: TimeChange, assumed: Assumptions
) -> str | None:
    if adopted is None:
        return "no ledger entry of the unit: nothing says when it adopted Orchestra"
    if cost <= 0:
        return "no AI cost recorded for the unit in the period (ROI divides by it)"
    if cycle.source == "none":
        return (
            f"fewer than {MIN_SAMPLES} cycle times before adoption or in the period "
            "(neither pull/merge requests nor git merges)"
        )
    if missing := assumed.missing():
        return "assumption not given: " + ", ".join(missing)
    return None


def compute_roi(
    session: Session,
    scope: Scope,
    period: Period,
    assumed: Assumptions,
    *,
    adopted_at: datetime | None = None,
    baseline: Period | None = None,
) -> ROIReport:
    """ROI of ``scope`` over ``period``. The baseline is ``baseline``, else the span of
    the same length ending at adoption (``adopted_at``, else the unit's first ledger
    entry)."""
    adopted = aware(adopted_at) or adoption(session, scope)
    if baseline is None and adopted is not None:
        baseline = Period(adopted - (period.end - period.start), adopted, "baseline")
    b = load_dataset(session, scope, period)
    cost = int(b.ledger_nano) / NANO  # PostgreSQL sums to Decimal
    if baseline is None:
        empty = TimeChange("cycle_time", "none", None, None, (), ())
        cycle, lead = empty, TimeChange("lead_time", "none", None, None, (), ())
    else:
        a = load_dataset(session, scope, baseline)
        cycle = _cycle_change(session, a, b)
        lead = _time_change("lead_time", "changes", lead_time_pairs(a), lead_time_pairs(b))
    unknown = _unknown(adopted, cost, cycle, assumed)
    changes = len(cycle.rows)
    saved = value = roi = None
    interval = None
    if unknown is None and cycle.reduction is not None:
        per_hour = float(assumed.cost_per_developer_hour or 0)
        share = float(assumed.effort_share or 0)

        def roi_of(reduction: float) -> float:
            return (reduction * share * changes * per_hour - cost) / cost

        saved = cycle.reduction * share * changes
        value = saved * per_hour
        roi = roi_of(cycle.reduction)
        interval = bootstrap_interval(list(cycle.baseline_hours), list(cycle.hours), roi_of)
    return ROIReport(
        scope.name,
        period,
        baseline,
        adopted,
        cost,
        b.ledger_rows,
        cycle,
        lead,
        assumed,
        changes,
        saved,
        value,
        roi,
        interval,
        unknown,
    )


def roi_report(
    db: Database,
    principal: Principal,
    *,
    unit: str | None = None,
    period: Period,
    assumed: Assumptions,
    adopted_at: datetime | None = None,
    baseline: Period | None = None,
    aliases: dict[str, str] | None = None,
) -> ROIReport:
    """:func:`compute_roi` for ``unit`` (default: the organisation), if ``principal`` may
    see its figures (a developer's own: that developer, their leads, admins)."""
    tree = load_org(db)
    if tree is None:
        raise AnalyticsError(
            "the organisation is not stored yet", hint="run `orchestra org sync` first"
        )
    scope = resolve_scope(tree, unit, aliases)
    check_visible(principal, scope, tree)
    with db.session() as session:
        return compute_roi(
            session, scope, period, assumed, adopted_at=adopted_at, baseline=baseline
        )
