"""Spend aggregated from the ledger, for ``orchestra spend`` and ``GET /v1/orchestra/spend``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args

from sqlalchemy import func, select

from orchestra.accounting.budgets import period_bounds
from orchestra.accounting.errors import AccountingError
from orchestra.accounting.money import from_nano
from orchestra.accounting.store import (
    AccountingStore,
    as_utc,
    read_rows,
    utcnow,
)
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayLedgerEntry as L

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


def _group_column(by: str, dialect: str) -> Any:
    if by == "day":
        if dialect == "postgresql":
            return func.to_char(func.timezone("UTC", L.started_at), "YYYY-MM-DD")
        return func.substr(L.started_at, 1, 10)
    column = {
        "developer": L.developer,
        "team": L.squad,
        "agent": L.agent,
        "key": L.key_id,
        "tier": L.tier,
        "run": L.run_id,
        "model": func.coalesce(L.served_model, L.requested_model),
    }.get(by)
    if column is None:
        raise InvalidSpendQuery(
            f"cannot group spend by {by!r}", hint=f"use one of {', '.join(SPEND_BY)}"
        )
    return column


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
    group = _group_column(by, store_db.engine.dialect.name).label("grp")
    query = select(
        group,
        func.count(),
        func.sum(L.input_tokens),
        func.sum(L.output_tokens),
        func.sum(L.cache_read_tokens),
        func.sum(L.cache_write_tokens),
        func.sum(L.cost_nano),
    ).group_by(group)
    if since is not None:
        query = query.where(L.started_at >= since)
    if until is not None:
        query = query.where(L.started_at < until)
    if developer is not None:
        query = query.where(L.developer == developer)
    if team is not None:
        query = query.where((L.squad == team) | (L.tribe == team) | (L.division == team))
    with store_db.engine.connect() as conn:
        found = read_rows(conn, query)  # a damaged text is grouped with its bytes escaped
        rows = [
            SpendRow(
                None if g is None else str(g),
                int(n),
                int(i or 0),
                int(o or 0),
                int(cr or 0),
                int(cw or 0),
                from_nano(int(c or 0)),
            )
            for g, n, i, o, cr, cw, c in found
        ]
    rows.sort(
        key=lambda r: (
            (r.group is None, r.group or "") if by == "day" else (-r.cost_usd, r.group or "")
        )
    )
    return SpendReport(by, period, since, until, tuple(rows))
