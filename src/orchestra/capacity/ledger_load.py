"""What the ledger says about load and cloud spend: each developer's request rate at the
peak hour, and the cloud spend per developer-month.

Both are computed from recorded calls only; with no history they are unknown, with the
reason, never a default.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from orchestra.accounting import LedgerEntry

__all__ = ["CloudSpend", "PeakLoad", "cloud_spend", "peak_load"]

_DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True, slots=True)
class PeakLoad:
    """The busiest clock hour in the ledger and the request rate of a developer in it."""

    hour: datetime | None = None
    """Start of the busiest hour (UTC)."""
    requests: int = 0
    """Model calls started in that hour by named developers."""
    developers: int = 0
    """Developers who made a call in that hour."""
    reason: str | None = None
    """Why the rate is unknown, when it is."""

    @property
    def per_developer_rps(self) -> float | None:
        """Requests per second of one developer at the peak hour."""
        if self.developers == 0:
            return None
        return self.requests / self.developers / 3600

    def to_json(self) -> dict[str, Any]:
        """For ``--json``."""
        rate = self.per_developer_rps
        return {
            "hour": None if self.hour is None else self.hour.isoformat(),
            "requests": self.requests,
            "developers": self.developers,
            "per_developer_requests_per_hour": None if rate is None else round(rate * 3600, 2),
            "reason": self.reason,
        }


def peak_load(entries: Iterable[LedgerEntry]) -> PeakLoad:
    """The busiest hour by calls of named developers (ties: the earliest)."""
    calls: Counter[datetime] = Counter()
    people: defaultdict[datetime, set[str]] = defaultdict(set)
    for entry in entries:
        developer = entry.attribution.developer
        if developer is None or entry.started_at is None:
            continue
        hour = entry.started_at.replace(minute=0, second=0, microsecond=0)
        calls[hour] += 1
        people[hour].add(developer)
    if not calls:
        return PeakLoad(reason="the ledger has no calls by a named developer in the window")
    hour = max(sorted(calls), key=lambda h: calls[h])
    return PeakLoad(hour, calls[hour], len(people[hour]))


@dataclass(frozen=True, slots=True)
class CloudSpend:
    """Recorded spend on priced (cloud) models, per developer-month."""

    total_usd: Decimal = Decimal(0)
    developers: int = 0
    days: float = 0.0
    """Span of the priced calls, first to last (at least one day)."""
    reason: str | None = None

    @property
    def per_developer_month_usd(self) -> float | None:
        """Cloud spend of one developer in a month at the recorded pace."""
        if self.developers == 0 or self.total_usd <= 0:
            return None
        months = self.days / _DAYS_PER_MONTH
        return float(self.total_usd) / self.developers / months

    def to_json(self) -> dict[str, Any]:
        """For ``--json``."""
        monthly = self.per_developer_month_usd
        return {
            "total_usd": str(self.total_usd),
            "developers": self.developers,
            "days": round(self.days, 2),
            "per_developer_month_usd": None if monthly is None else round(monthly, 2),
            "reason": self.reason,
        }


def cloud_spend(entries: Iterable[LedgerEntry]) -> CloudSpend:
    """Spend on calls that cost money (local models are priced at $0), by named developers."""
    total = Decimal(0)
    developers: set[str] = set()
    first: datetime | None = None
    last: datetime | None = None
    for entry in entries:
        cost = entry.cost_usd
        developer = entry.attribution.developer
        if cost is None or cost <= 0 or developer is None or entry.started_at is None:
            continue
        total += cost
        developers.add(developer)
        first = entry.started_at if first is None else min(first, entry.started_at)
        last = entry.started_at if last is None else max(last, entry.started_at)
    if first is None or last is None:
        return CloudSpend(reason="no cloud spend by a named developer recorded in the window")
    days = max(1.0, (last - first).total_seconds() / 86400)
    return CloudSpend(total, len(developers), days)
