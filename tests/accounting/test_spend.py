from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orchestra.accounting import (
    Accounting,
    Attribution,
    InvalidSpendQuery,
    LedgerEntry,
    parse_period,
    spend_report,
)
from orchestra.providers import Usage

from .conftest import FakeClock


def _seed(acc: Accounting, clock: FakeClock) -> None:
    alice = Attribution(squad="payments", developer="alice", agent="implementer")
    bob = Attribution(squad="search", developer="bob", agent="reviewer")
    clock.now = datetime(2026, 3, 2, 10, tzinfo=UTC)  # Monday
    acc.ledger.append(
        LedgerEntry(alice, "sonnet", "claude-sonnet-4-5", usage=Usage(10**6, 0))
    )  # $3
    clock.now = datetime(2026, 3, 18, 9, tzinfo=UTC)
    acc.ledger.append(
        LedgerEntry(alice, "haiku", "claude-haiku-4-5", usage=Usage(10**6, 10**6))
    )  # $6
    acc.ledger.append(LedgerEntry(bob, "sonnet", "claude-sonnet-4-5", usage=Usage(0, 10**6)))  # $15
    clock.now = datetime(2026, 2, 27, 9, tzinfo=UTC)
    acc.ledger.append(LedgerEntry(bob, "haiku", "claude-haiku-4-5", usage=Usage(10**6, 0)))  # $1
    clock.now = datetime(2026, 3, 18, 12, tzinfo=UTC)


def test_spend_grouped_by_each_dimension(accounting: Accounting, clock: FakeClock) -> None:
    _seed(accounting, clock)
    now = clock()
    by_dev = spend_report(accounting.store, by="developer", period="month", now=now)
    assert [(r.group, r.cost_usd, r.requests) for r in by_dev.rows] == [
        ("bob", 15, 1),
        ("alice", 9, 2),
    ]
    assert by_dev.total_usd == Decimal(24)
    by_team = spend_report(accounting.store, by="team", period="all", now=now)
    assert {r.group: r.cost_usd for r in by_team.rows} == {"search": 16, "payments": 9}
    by_model = spend_report(accounting.store, by="model", period="today", now=now)
    assert {r.group: r.cost_usd for r in by_model.rows} == {
        "claude-sonnet-4-5": 15,
        "claude-haiku-4-5": 6,
    }
    by_agent = spend_report(accounting.store, by="agent", period="week", now=now)
    assert {r.group: r.requests for r in by_agent.rows} == {"reviewer": 1, "implementer": 1}
    by_day = spend_report(accounting.store, by="day", period="2026-02-27..2026-03-02", now=now)
    assert [(r.group, r.cost_usd) for r in by_day.rows] == [("2026-02-27", 1), ("2026-03-02", 3)]
    only = spend_report(accounting.store, by="model", period="all", developer="alice", now=now)
    assert only.total_usd == 9 and only.to_json()["total_usd"] == "9"


def test_bad_queries_say_how_to_fix_them() -> None:
    with pytest.raises(InvalidSpendQuery, match="unknown period"):
        parse_period("yesterday")
    with pytest.raises(InvalidSpendQuery, match="ends before"):
        parse_period("2026-03-02..2026-03-01")
    with pytest.raises(InvalidSpendQuery, match="invalid date"):
        parse_period("2026-02-30..2026-03-01")
    since, until = parse_period("month", datetime(2026, 12, 5, tzinfo=UTC))
    assert (since, until) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_unknown_grouping_is_refused(accounting: Accounting) -> None:
    with pytest.raises(InvalidSpendQuery, match="cannot group"):
        spend_report(accounting.store, by="colour")
