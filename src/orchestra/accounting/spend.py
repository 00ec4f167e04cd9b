"""Spend aggregated from the ledger, for ``orchestra spend`` and ``GET /v1/orchestra/spend``:
read from the ledger's rollups (:mod:`.ledger_totals`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args

from orchestra.accounting.budgets import period_bounds
from orchestra.accounting.errors import AccountingError
from orchestra.accounting.ledger_totals import LedgerMatch, ledger_totals
from orchestra.accounting.money import from_nano
from orchestra.accounting.store import AccountingStore, as_utc, utcnow
from orchestra.store import Database

SpendBy = Literal["developer", "team", "agent", "model", "day", "key", "tier", "run"]
SPEND_BY: tuple[str, ...] = get_args(SpendBy)
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


class InvalidSpendQuery(AccountingError):
    """A spend query has an unknown grouping or a malformed period."""

    status = 400
    error_type = "invalid_request_error"


@dataclass(frozen=True, slots=True)
class SpendRow:
    """Totals of one group."""

    group: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal

    def to_json(self) -> dict[str, Any]:
        """The row as JSON-ready values (the cost as a string)."""
        return {
            "group": self.group,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cost_usd": str(self.cost_usd),
        }


@dataclass(frozen=True, slots=True)
class SpendReport:
    """Spend grouped by one dimension over a period ``[since, until)`` (UTC)."""

    by: str
    period: str
    since: datetime | None
    until: datetime | None
    rows: tuple[SpendRow, ...]

    @property
    def total_usd(self) -> Decimal:
        """The cost of all rows, in dollars."""
        return sum((r.cost_usd for r in self.rows), Decimal(0))

    @property
    def total_requests(self) -> int:
        """The requests of all rows."""
        return sum(r.requests for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return {
            "by": self.by,
            "period": self.period,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "rows": [r.to_json() for r in self.rows],
            "total_usd": str(self.total_usd),
            "total_requests": self.total_requests,
        }


def parse_period(text: str, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """``today``, ``week`` (since Monday), ``month`` (since the 1st), ``all`` or
    ``YYYY-MM-DD..YYYY-MM-DD`` (both days included); UTC."""
    now = as_utc(now or utcnow())
    if text in ("today", "week", "month"):
        # The same calendar periods as budgets, so a spend report lines up with a budget.
        return period_bounds("day" if text == "today" else text, now)
    if text == "all":
        return None, None
    m = _RANGE.match(text)
    if m:
        try:
            first, last = date.fromisoformat(m.group(1)), date.fromisoformat(m.group(2))
        except ValueError as exc:
            raise InvalidSpendQuery(
                f"invalid date in period {text!r}", hint="use YYYY-MM-DD..YYYY-MM-DD"
            ) from exc
        if last < first:
            raise InvalidSpendQuery(
                f"period {text!r} ends before it starts", hint="put the earlier day first"
            )
        since = datetime(first.year, first.month, first.day, tzinfo=now.tzinfo)
        until = datetime(last.year, last.month, last.day, tzinfo=now.tzinfo) + timedelta(days=1)
        return since, until
    raise InvalidSpendQuery(
        f"unknown period {text!r}", hint="use today, week, month, all or YYYY-MM-DD..YYYY-MM-DD"
    )


_DIMENSION = {
    "developer": "developer",
    "team": "squad",
    "agent": "agent",
    "model": "model",
    "day": "day",
    "key": "key_id",
    "tier": "tier",
    "run": "run_id",
}
"""Each grouping's ledger-totals dimension (:func:`~.ledger_totals.ledger_totals`)."""


def spend_report(
    db: Database | AccountingStore,
    *,
    by: str = "developer",
    period: str = "month",
    now: datetime | None = None,
    developer: str | None = None,
    team: str | None = None,
) -> SpendReport:
    """Spend from the ledger grouped ``by`` over ``period``; optionally only one developer's
    or one team's calls (the HTTP endpoint limits non-admin keys to their own spend)."""
    store_db = db.db if isinstance(db, AccountingStore) else db
    since, until = parse_period(period, now)
    dimension = _DIMENSION.get(by)
    if dimension is None:
        raise InvalidSpendQuery(
            f"cannot group spend by {by!r}", hint=f"use one of {', '.join(SPEND_BY)}"
        )
    where = []
    if developer is not None:
        where.append(LedgerMatch(("developer",), developer))
    if team is not None:
        where.append(LedgerMatch(("squad", "tribe", "division"), team))
    with store_db.engine.connect() as conn:
        totals = ledger_totals(conn, by=(dimension,), where=where, since=since, until=until)
    rows = [
        SpendRow(
            g,
            t.calls,
            t.input_tokens,
            t.output_tokens,
            t.cache_read_tokens,
            t.cache_write_tokens,
            from_nano(t.cost_nano),
        )
        for (g,), t in totals.items()
    ]
    rows.sort(
        key=lambda r: (
            (r.group is None, r.group or "") if by == "day" else (-r.cost_usd, r.group or "")
        )
    )
    return SpendReport(by, period, since, until, tuple(rows))
