"""Calls journaled before their upstream request (``Ledger.open_call``): whatever stores
the call ends its open line, and a crash at any moment leaves exactly one entry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from orchestra.accounting import Accounting, Attribution, BudgetSpec, LedgerEntry
from orchestra.providers import Usage
from orchestra.store import Database

ALICE = Attribution(org="acme", squad="payments", developer="alice", key_id="key_a")
T0 = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)


def _draft(i: int) -> LedgerEntry:
    return LedgerEntry(ALICE.for_call(agent=f"a{i}"), "haiku", started_at=T0, id=f"call-{i}")


def test_each_way_of_storing_a_call_ends_its_open_line_and_a_crash_reconciles_the_rest(
    database: Database, tmp_path: Path
) -> None:
    acc = Accounting(database, journal_dir=tmp_path, pepper=b"p")
    acc.budgets.define(BudgetSpec("dev", "developer", "alice", Decimal(5), "month"))
    ledger = acc.ledger
    held = [acc.budgets.reserve(ALICE, "claude-haiku-4-5", Decimal("0.5")) for _ in range(4)]
    for i in range(4):
        ledger.open_call(_draft(i), reservation=held[i])
    assert ledger.unfinished == 4
    finished = LedgerEntry(
        ALICE.for_call(agent="a0"),
        "haiku",
        "claude-haiku-4-5",
        usage=Usage(10, 5),
        started_at=T0,
        latency_ms=5.0,
        id="call-0",
    )
    ledger.journal_and_queue(finished, reservation=held[0])  # its row replaces the open line
    stored = asyncio.run(ledger.aappend(_draft(1), reservation=held[1]))
    ledger.end_open(stored.id)
    stream = ledger.open_stream(_draft(2), reservation=held[2])  # the same id, again
    stream.progress(Usage(7, 2))
    ledger.flush()
    assert ledger.unfinished == 2  # the stream and call-3, still in flight
    acc.close()  # what a SIGKILL leaves: the journal with its unfinished records

    again = Accounting(database, journal_dir=tmp_path, pepper=b"p")
    try:
        reconciled = {e.id: e for e in again.start()}
        assert set(reconciled) == {"call-2", "call-3"}
        assert reconciled["call-2"].usage == Usage(7, 2) and reconciled["call-2"].stream
        assert reconciled["call-3"].outcome == "reconciled"
        entries = {e.id: e for e in again.ledger.entries()}
        assert sorted(entries) == ["call-0", "call-1", "call-2", "call-3"]  # one each
        assert entries["call-0"].outcome == "ok" and entries["call-0"].usage == Usage(10, 5)
        (status,) = again.budgets.status()
        assert status.reserved_usd == 0
    finally:
        again.close()
