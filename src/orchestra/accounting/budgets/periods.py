"""Budget periods: calendar-aligned in UTC.

A day starts at 00:00 UTC, a week on Monday 00:00 UTC (ISO weeks), a month on the 1st at
00:00 UTC. A ``run`` budget has no period (``none``). Each period of a budget is one
window row, keyed by the period's start as text (:func:`period_key`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, get_args

from orchestra.accounting.store import as_utc

Scope = Literal["developer", "team", "org", "run"]
Period = Literal["day", "week", "month", "none"]
SCOPES: tuple[str, ...] = get_args(Scope)
PERIODS: tuple[str, ...] = get_args(Period)


def period_bounds(period: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    """``(start, end)`` of the UTC calendar period containing ``now``; ``(None, None)`` for none."""
    now = as_utc(now)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return start, end
    return None, None


def period_key(start: datetime | None) -> str:
    """The window key of a period starting at ``start`` (``all`` for no period)."""
    return start.strftime("%Y-%m-%dT%H:%M:%SZ") if start is not None else "all"


class PeriodCache:
    """The current period of each kind, remembered while it lasts (the hot path asks for it
    on every call)."""

    def __init__(self) -> None:
        self._periods: dict[str, tuple[datetime | None, datetime | None, str]] = {}

    def current(self, period: str, now: datetime) -> tuple[str, datetime | None]:
        """The key and end of the period containing ``now``."""
        cached = self._periods.get(period)
        if cached is not None:
            start, end, key = cached
            if start is None or end is None or start <= now < end:
                return key, end
        start, end = period_bounds(period, now)
        self._periods[period] = (start, end, period_key(start))
        return period_key(start), end
