"""Early-warning indicators: series computed from recorded data, a threshold each, and the
Mann-Kendall test so that a warning needs a real trend, never one bad day.

A finding is a ``warning`` when the series worsens significantly (Mann-Kendall at level
``alpha``) and ``critical`` when, on top, its latest point is past the threshold. A point
past the threshold with no trend raises nothing. The one exception is the cost anomaly,
which is about a single day by definition: the last day's cost more than three standard
deviations above the days before it (at least seven of them). The other is the budget
burn rate (:mod:`orchestra.analytics.budget_burn`), a projection against each budget's cap:
``critical`` past the share of the cap spent, ``warning`` when the projected spend reaches
the cap before the window ends.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestra.analytics.budget_burn import BudgetBurn, budget_burn
from orchestra.analytics.dataset import Dataset, aware, load_dataset
from orchestra.analytics.kpis import change_failure_rate, cycle_time
from orchestra.analytics.scope import Period, Scope
from orchestra.analytics.trend import mann_kendall
from orchestra.store.tables.engine import RunRow, StepRow
from orchestra.store.tables.gateway import GatewayLedgerEntry as Ledger

ERROR_OUTCOMES = frozenset({"upstream_error", "stream_failed", "error"})
"""Ledger outcomes that are the gateway's or the upstream's failure (not the client's, not
a budget's or a limit's refusal)."""


@dataclass(frozen=True)
class Indicator:
    """One early-warning indicator."""

    name: str
    title: str
    unit: str
    worse_when: str
    """``up`` or ``down``."""
    default_threshold: float | None
    step: str
    """``day``, ``week``, ``run`` or ``budget``: what one point of the series is."""
    how: str = ""
    """How the series is computed, and what raises a finding (the docs and the dashboard
    show it)."""


INDICATORS: tuple[Indicator, ...] = (
    Indicator(
        "gateway_error_rate",
        "Gateway error rate (SLO)",
        "ratio",
        "up",
        0.05,
        "day",
        "per day: ledger calls that ended upstream_error, stream_failed or error ÷ calls (a "
        "client's error, a budget's or a limit's refusal are not the gateway's)",
    ),
    Indicator(
        "gateway_latency_p95",
        "Gateway p95 latency (SLO)",
        "ms",
        "up",
        10_000.0,
        "day",
        "per day: p95 of latency_ms of successful calls",
    ),
    Indicator(
        "daily_cost",
        "AI spend per day (burn)",
        "USD",
        "up",
        None,
        "day",
        "per day: ledger cost; also an anomaly when the last day is more than three standard "
        "deviations above the days before it (at least seven)",
    ),
    Indicator(
        "cycle_time", "Cycle time", "hours", "up", 72.0, "week", "per week: the cycle time KPI"
    ),
    Indicator(
        "change_failure_rate",
        "Change failure rate (quality)",
        "ratio",
        "up",
        0.15,
        "week",
        "per week: the change failure rate KPI",
    ),
    Indicator(
        "test_coverage",
        "Changed-line coverage (automation)",
        "percent",
        "down",
        70.0,
        "run",
        "per run: changed-line coverage of the runs finished in the look-back, in order",
    ),
    Indicator(
        "budget_burn_rate",
        "Budget burn rate",
        "ratio",
        "up",
        0.9,
        "budget",
        "per budget of the unit: ledger spend in the current window ÷ cap (critical above the "
        "threshold); warning when the projected spend (the recent daily spend, along its trend "
        "when Mann-Kendall finds it rising) reaches the cap before the window ends",
    ),
    Indicator(
        "run_duration",
        "Run duration (engine)",
        "minutes",
        "up",
        120.0,
        "day",
        "per day: median wall time (created to finished) of the unit's runs that succeeded",
    ),
    Indicator(
        "step_duration",
        "Agent step duration (engine)",
        "seconds",
        "up",
        900.0,
        "day",
        "per day: median wall time (started to finished) of the agent steps of the unit's runs",
    ),
)
"""The indicators of the design's list that recorded data can support."""


@dataclass(frozen=True)
class Finding:
    """An indicator that crossed into a warning for a unit."""

    unit: str
    indicator: str
    severity: str
    value: float | None
    threshold: float | None
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)
    subject: str = ""
    """What of the unit the finding is about when an indicator has several (a budget's
    name); part of the alert's de-duplication key."""


Series = list[tuple[str, float]]
"""(label of the point, value), oldest first."""


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _daily(session: Session, scope: Scope, days: int, now: datetime) -> dict[str, Series]:
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    query = select(Ledger.started_at, Ledger.outcome, Ledger.latency_ms, Ledger.cost_nano).where(
        Ledger.started_at >= start, Ledger.started_at < now
    )
    column = {
        "developer": Ledger.developer,
        "squad": Ledger.squad,
        "tribe": Ledger.tribe,
        "division": Ledger.division,
    }.get(scope.kind)
    if column is not None:
        query = query.where(column == scope.name)
    calls: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    latency: dict[str, list[float]] = defaultdict(list)
    cost: dict[str, int] = defaultdict(int)
    for started, outcome, latency_ms, nano in session.execute(query):
        day = f"{aware(started):%Y-%m-%d}"
        calls[day] += 1
        errors[day] += outcome in ERROR_OUTCOMES
        cost[day] += int(nano)
        if latency_ms is not None and outcome == "ok":
            latency[day].append(float(latency_ms))
    days_seen = sorted(calls)
    return {
        "gateway_error_rate": [(d, errors[d] / calls[d]) for d in days_seen],
        "gateway_latency_p95": [(d, _p95(latency[d])) for d in days_seen if latency[d]],
        "daily_cost": [(d, cost[d] / 1e9) for d in days_seen],
    }


def _weekly(data: Dataset, weeks: int, now: datetime, formula: Callable[[Dataset], Any]) -> Series:
    series: Series = []
    for back in range(weeks, 0, -1):
        start = now - timedelta(weeks=back)
        week = Period(start, start + timedelta(weeks=1), f"{start:%G-W%V}")
        value = formula(replace(data, period=week)).value
        if value is not None:
            series.append((week.label, float(value)))
    return series


def _by_day(durations: dict[str, list[float]]) -> Series:
    return [(day, statistics.median(values)) for day, values in sorted(durations.items())]


def _durations(session: Session, data: Dataset) -> dict[str, Series]:
    """Per day, the median wall time of the unit's runs that succeeded (created to
    finished, minutes) and of their agent steps (started to finished, seconds), by the day
    each finished in the period."""
    start, end = data.period.start, data.period.end
    runs: dict[str, list[float]] = defaultdict(list)
    query = select(RunRow.id, RunRow.created_at, RunRow.finished_at).where(
        RunRow.status == "succeeded", RunRow.finished_at >= start, RunRow.finished_at < end
    )
    for run_id, created, finished in session.execute(query):
        if run_id in data.runs and (done := aware(finished)) and (began := aware(created)):
            runs[f"{done:%Y-%m-%d}"].append((done - began).total_seconds() / 60)
    steps: dict[str, list[float]] = defaultdict(list)
    query = select(StepRow.run_id, StepRow.started_at, StepRow.finished_at).where(
        StepRow.finished_at >= start, StepRow.finished_at < end
    )
    for run_id, began_at, finished in session.execute(query):
        if run_id in data.runs and (done := aware(finished)) and (began := aware(began_at)):
            steps[f"{done:%Y-%m-%d}"].append((done - began).total_seconds())
    return {"run_duration": _by_day(runs), "step_duration": _by_day(steps)}


def indicator_series(
    session: Session,
    scope: Scope,
    *,
    days: int,
    weeks: int,
    now: datetime,
    production: frozenset[str],
) -> dict[str, Series]:
    """Every indicator's series for ``scope`` up to ``now``."""
    series = _daily(session, scope, days, now)
    data = load_dataset(session, scope, Period(now - timedelta(weeks=weeks), now), production)
    series["cycle_time"] = _weekly(data, weeks, now, cycle_time)
    series["change_failure_rate"] = _weekly(data, weeks, now, change_failure_rate)
    runs = sorted(
        (
            r
            for r in data.runs.values()
            if r.coverage is not None and data.period.contains(r.finished_at)
        ),
        key=lambda r: r.finished_at or now,
    )
    series["test_coverage"] = [(r.id, float(r.coverage or 0.0)) for r in runs]
    series.update(_durations(session, data))
    return series


def _cost_anomaly(unit: str, points: Series) -> Finding | None:
    if len(points) < 8:
        return None
    before = [v for _, v in points[:-1]]
    mean, spread = statistics.fmean(before), statistics.pstdev(before)
    label, last = points[-1]
    if spread == 0 or last <= mean + 3 * spread:
        return None
    return Finding(
        unit,
        "daily_cost",
        "critical",
        last,
        mean + 3 * spread,
        f"{unit}: AI spend on {label} was ${last:.2f}, more than three standard "
        f"deviations above the previous days (mean ${mean:.2f})",
        {"series": points, "mean": mean, "stdev": spread},
    )


def evaluate(
    unit: str, indicator: Indicator, points: Series, *, threshold: float | None, alpha: float
) -> Finding | None:
    """A finding for ``points`` of ``indicator``, or ``None`` (no significant worsening)."""
    if indicator.name == "daily_cost" and (found := _cost_anomaly(unit, points)):
        return found
    trend = mann_kendall([v for _, v in points])
    worse = trend.rising(alpha) if indicator.worse_when == "up" else trend.falling(alpha)
    if not worse:
        return None
    label, latest = points[-1]
    past = threshold is not None and (
        latest > threshold if indicator.worse_when == "up" else latest < threshold
    )
    severity = "critical" if past else "warning"
    where = f" (threshold {threshold:g})" if threshold is not None else ""
    summary = (
        f"{unit}: {indicator.title} is {'rising' if trend.s > 0 else 'falling'} "
        f"over {trend.n} {indicator.step}s (Mann-Kendall p={trend.p_value:.3g}); "
        f"latest {latest:.4g} {indicator.unit} at {label}{where}"
    )
    detail = {
        "series": points,
        "mann_kendall": {
            "s": trend.s,
            "z": trend.z,
            "p_value": trend.p_value,
            "sen_slope": trend.slope,
        },
    }
    return Finding(unit, indicator.name, severity, latest, threshold, summary, detail)


def _burn_words(burn: BudgetBurn) -> str:
    if burn.rate_usd_per_day is None:
        return f"; burn rate unknown ({burn.why_unknown})"
    words = f"; burning ${burn.rate_usd_per_day:.2f}/day ({burn.trend})"
    if burn.exhausts_at is not None and burn.window_end is not None:
        if burn.used is not None and burn.used >= 1:
            return words + "; the cap is reached"
        return (
            words + f"; projected to reach the cap at {burn.exhausts_at:%Y-%m-%d %H:%M} UTC, "
            f"before the window ends at {burn.window_end:%Y-%m-%d %H:%M} UTC"
        )
    return words


def budget_finding(unit: str, burn: BudgetBurn, *, threshold: float) -> Finding | None:
    """``critical`` when more than ``threshold`` of the budget's cap is spent, ``warning``
    when the projected spend reaches the cap before the window ends, else ``None``."""
    over = burn.used is not None and burn.used > threshold
    early = burn.exhausts_at is not None and (
        burn.window_end is None or burn.exhausts_at < burn.window_end
    )
    if not (over or early):
        return None
    share = f" ({burn.used:.0%})" if burn.used is not None else ""
    window = f"per {burn.period}" if burn.period != "none" else "for the run"
    summary = (
        f"{unit}: budget {burn.budget} ({burn.scope} {burn.subject}, {window}) has "
        f"${burn.spent_usd:.2f} of ${burn.cap_usd:.2f} spent{share}" + _burn_words(burn)
    )
    return Finding(
        unit,
        "budget_burn_rate",
        "critical" if over else "warning",
        burn.used,
        threshold,
        summary,
        burn.to_dict(),
        subject=burn.budget,
    )


def find_warnings(
    session: Session,
    scope: Scope,
    *,
    now: datetime,
    days: int = 14,
    weeks: int = 8,
    alpha: float = 0.05,
    thresholds: Mapping[str, float] | None = None,
    production: frozenset[str] = frozenset({"production", "prod"}),
) -> list[Finding]:
    """The findings of every indicator for ``scope`` as of ``now``."""
    series = indicator_series(
        session, scope, days=days, weeks=weeks, now=now, production=production
    )
    found: list[Finding] = []
    for indicator in INDICATORS:
        threshold = (thresholds or {}).get(indicator.name, indicator.default_threshold)
        if indicator.name == "budget_burn_rate":
            burns = budget_burn(session, scope, now=now, days=days, alpha=alpha)
            limit = threshold if threshold is not None else 0.9
            found += filter(None, (budget_finding(scope.name, b, threshold=limit) for b in burns))
            continue
        finding = evaluate(
            scope.name, indicator, series.get(indicator.name, []), threshold=threshold, alpha=alpha
        )
        if finding is not None:
            found.append(finding)
    return found
