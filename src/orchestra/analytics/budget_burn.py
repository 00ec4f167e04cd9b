"""Budget burn rate: each budget's spend so far in its window, read from the ledger, how fast
it is being spent, and when the cap will be reached at that pace.

- **Spend so far**: the ledger's cost of the budget's subject in the current window (a
  developer's calls, a team's by its squad, tribe or division columns, the organisation's,
  a run's), from the ledger's rollups (:func:`orchestra.accounting.ledger_totals`). Not the
  budget's own window row: figures come from the recorded calls only.
- **Burn rate**: the daily spend of the subject over the full days of the look-back (from
  its first day with a recorded call). When the Mann-Kendall test finds it rising, the
  projection follows the trend (Sen's slope and intercept: the spend of each coming day
  grows by the slope); otherwise it is the mean of the last seven of those days.
- **Projected exhaustion**: the moment the projected spend reaches the cap's remainder,
  if that is before the window ends.

Too little data (fewer than :data:`MIN_DAYS` full days since the subject's first recorded
call in the look-back) leaves the rate and the projection **unknown**. A run budget has no
window, so it has no projection; it is watched only while its run is active.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from orchestra.accounting import LedgerMatch, ledger_totals
from orchestra.accounting.budgets import period_bounds
from orchestra.analytics.scope import Scope
from orchestra.analytics.trend import Trend, mann_kendall
from orchestra.store.tables.engine import RunRow
from orchestra.store.tables.gateway import GatewayBudget

MIN_DAYS = 3
"""Full days of recorded spend the rate needs (fewer: unknown)."""
RECENT_DAYS = 7
"""Days the steady rate averages."""
ACTIVE_RUN = frozenset({"queued", "running"})
"""Run statuses whose budget is still being spent."""
DAY = timedelta(days=1)


@dataclass(frozen=True)
class BudgetBurn:
    """One budget's window, spend, burn rate and projection as of ``now``."""

    budget: str
    scope: str
    subject: str
    period: str
    window_start: datetime | None
    window_end: datetime | None
    cap_usd: float
    spent_usd: float
    calls: int
    used: float | None
    """``spent ÷ cap`` (``None`` for a zero cap)."""
    rate_usd_per_day: float | None
    """The projected spend of the coming day; ``None``: unknown."""
    trend: str
    """``rising`` or ``falling`` (significant, Mann-Kendall), ``steady`` (neither) or
    ``unknown``; only a rise changes the projection."""
    exhausts_at: datetime | None
    """When the projection reaches the cap, if before the window ends (or now, if reached)."""
    projected_usd: float | None
    """Spend at the window's end at the projected rate (``None``: unknown or no window)."""
    why_unknown: str | None
    series: list[tuple[str, float]]
    """The full days' spend the rate was computed from, oldest first."""
    mann_kendall: dict[str, float] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = dict(self.__dict__)
        for key in ("window_start", "window_end", "exhausts_at"):
            data[key] = data[key].isoformat() if data[key] is not None else None
        return data


def _match(scope: str, subject: str) -> list[LedgerMatch]:
    if scope == "developer":
        return [LedgerMatch(("developer",), subject)]
    if scope == "team":
        return [LedgerMatch(("squad", "tribe", "division"), subject)]
    if scope == "run":
        return [LedgerMatch(("run_id",), subject)]
    return [] if subject == "*" else [LedgerMatch(("org",), subject)]


def _sen_line(values: Sequence[float], trend: Trend) -> float:
    """Sen's intercept: the median of ``v_i - slope * i``."""
    return statistics.median(v - trend.slope * i for i, v in enumerate(values))


@dataclass(frozen=True)
class _Rate:
    trend: Trend
    intercept: float
    rising: bool
    steady: float

    def at(self, index: int) -> float:
        """The projected spend of day ``index`` (0: the first day of the series)."""
        if self.rising:
            return max(0.0, self.intercept + self.trend.slope * index)
        return self.steady


def _project(
    rate: _Rate, start_index: int, remaining: float, now: datetime, end: datetime
) -> tuple[datetime | None, float]:
    """When ``remaining`` dollars are spent at ``rate`` from ``now`` (``None``: not before
    ``end``), and the projected spend from ``now`` to ``end``."""
    moment, index, total, found = now, start_index, 0.0, None
    while moment < end:
        midnight = (moment + DAY).replace(hour=0, minute=0, second=0, microsecond=0)
        stop = min(midnight, end)
        per_day = rate.at(index)
        amount = per_day * ((stop - moment) / DAY)
        if found is None and per_day > 0 and total + amount >= remaining:
            found = moment + (remaining - total) / per_day * DAY
        total += amount
        moment, index = stop, index + 1
    return found, total


def _daily(
    conn: Connection, where: list[LedgerMatch], since: datetime, until: datetime
) -> dict[str, tuple[int, int]]:
    totals = ledger_totals(conn, by=("day",), where=where, since=since, until=until)
    return {str(day): (t.cost_nano, t.calls) for (day,), t in totals.items() if day}


def burn_of(
    conn: Connection,
    row: GatewayBudget,
    *,
    now: datetime,
    days: int = 14,
    alpha: float = 0.05,
) -> BudgetBurn:
    """``row``'s burn as of ``now``, from the ledger's daily spend of its subject."""
    now = now.astimezone(UTC)  # days and windows are UTC's
    where = _match(row.scope, row.subject)
    cap = float(Decimal(row.cap_nano) / Decimal(10**9))
    start, end = period_bounds(row.period, now)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=days)
    since = first_day if start is None else min(first_day, start)
    spend = _daily(conn, where, since, now)
    if start is None:  # a run: its whole life
        in_window = [(t.cost_nano, t.calls) for t in ledger_totals(conn, where=where).values()]
    else:
        in_window = [v for day, v in spend.items() if day >= f"{start:%Y-%m-%d}"]
    spent = sum(n for n, _ in in_window) / 1e9
    calls = sum(c for _, c in in_window)
    used = spent / cap if cap > 0 else None
    labels = [f"{first_day + timedelta(days=i):%Y-%m-%d}" for i in range(days)]
    seen = [i for i, label in enumerate(labels) if label in spend]
    series = [(lb, spend.get(lb, (0, 0))[0] / 1e9) for lb in labels[seen[0] :]] if seen else []
    why = None
    if end is None:
        why = "a run budget has no window: only its used share is watched"
    elif cap <= 0:
        why = "the cap is zero: no spend is allowed"
    elif len(series) < MIN_DAYS:
        why = f"fewer than {MIN_DAYS} full days of recorded spend in the last {days} days"
    unknown = BudgetBurn(
        row.name,
        row.scope,
        row.subject,
        row.period,
        start,
        end,
        cap,
        spent,
        calls,
        used,
        rate_usd_per_day=None,
        trend="unknown",
        exhausts_at=None,
        projected_usd=None,
        why_unknown=why,
        series=series,
        mann_kendall=None,
    )
    if why is not None or end is None:
        return unknown
    values = [v for _, v in series]
    trend = mann_kendall(values)
    rising = trend.rising(alpha)
    rate = _Rate(trend, _sen_line(values, trend), rising, statistics.fmean(values[-RECENT_DAYS:]))
    remaining = cap - spent
    exhausts: datetime | None = now
    ahead = 0.0
    if remaining > 0:
        exhausts, ahead = _project(rate, len(values), remaining, now, end)
    return replace(
        unknown,
        rate_usd_per_day=rate.at(len(values)),
        trend="rising" if rising else "falling" if trend.falling(alpha) else "steady",
        exhausts_at=exhausts,
        projected_usd=spent + ahead,
        mann_kendall={"s": trend.s, "z": trend.z, "p_value": trend.p_value, "slope": trend.slope},
    )


def _active_runs_of(session: Session, developer: str, budgeted: set[str]) -> set[str]:
    """The runs with a budget that are still active and whose calls are ``developer``'s."""
    active = set(session.scalars(select(RunRow.id).where(RunRow.status.in_(ACTIVE_RUN))))
    conn = session.connection()
    mine = set()
    for run in active & budgeted:
        who = ledger_totals(conn, by=("developer",), where=[LedgerMatch(("run_id",), run)])
        if who and max(who, key=lambda k: who[k].calls)[0] == developer:
            mine.add(run)
    return mine


def budgets_of(session: Session, scope: Scope) -> list[GatewayBudget]:
    """The budgets a check of ``scope`` watches: the organisation's (``*`` or its name),
    a team's, a developer's and the budgets of that developer's active runs."""
    rows = list(session.scalars(select(GatewayBudget).order_by(GatewayBudget.name)))
    if scope.is_organisation:
        return [r for r in rows if r.scope == "org" and r.subject in ("*", scope.name)]
    if scope.kind == "developer":
        budgeted = {r.subject for r in rows if r.scope == "run"}
        runs = _active_runs_of(session, scope.name, budgeted) if budgeted else set()
        return [
            r
            for r in rows
            if (r.scope == "developer" and r.subject == scope.name)
            or (r.scope == "run" and r.subject in runs)
        ]
    return [r for r in rows if r.scope == "team" and r.subject == scope.name]


def budget_burn(
    session: Session, scope: Scope, *, now: datetime, days: int = 14, alpha: float = 0.05
) -> list[BudgetBurn]:
    """The burn of every budget a check of ``scope`` watches, by budget name."""
    conn = session.connection()
    return [
        burn_of(conn, row, now=now, days=days, alpha=alpha) for row in budgets_of(session, scope)
    ]
