"""The journal's ``row`` line of a finished call: the entry's own row values, read back to
the same entry; and a dead process's journal of ``open``/``usage``/``row``/``done`` lines
reconciles."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from orchestra.accounting import Accounting, Attribution, BudgetSpec, Ledger, LedgerEntry
from orchestra.accounting.budgets import Hold, Reservation
from orchestra.accounting.ledger import OUTCOMES
from orchestra.accounting.ledger.entries import entry_from_values, entry_row, row_json
from orchestra.accounting.ledger.journal import row_line
from orchestra.accounting.store import as_utc, sqlite_time, time_for
from orchestra.gateway.accounts import Attempt, Caller, CallRecord
from orchestra.gateway.store_accountant import ledger_entry
from orchestra.providers import Usage
from orchestra.store import Database

ALICE = Attribution(org="acme", squad="payments", developer="alice", key_id="key_a")
HAIKU_CALL = Decimal("0.000035")  # 10 in + 5 out tokens of claude-haiku-4-5 ($1 / $5 per M)
T0 = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)


def _through_line(entry: LedgerEntry, time: Any, reservation: Reservation | None = None) -> Any:
    """``entry`` written as a ``row`` line (rows in ``time``'s form) and read back."""
    rec = json.loads(row_line(row_json(entry_row(entry, time)), reservation))
    assert rec["op"] == "row" and set(rec) == {"op", "row", "r"}
    return entry_from_values(rec["row"]), rec["r"]


_NAMES = st.none() | st.text(max_size=20)
_STEPS = st.text(alphabet=st.characters(blacklist_characters=">"), min_size=1, max_size=12)
_AWARE = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)
_MS = st.none() | st.floats(min_value=0, max_value=1e9, allow_nan=False)


@st.composite
def _entries(draw: st.DrawFn) -> LedgerEntry:
    started = draw(_AWARE)
    return LedgerEntry(
        attribution=Attribution(*(draw(_NAMES) for _ in range(9))),
        requested_model=draw(_NAMES),
        served_model=draw(_NAMES),
        provider=draw(_NAMES),
        tier=draw(_NAMES),
        usage=Usage(*(draw(st.integers(0, 2**40)) for _ in range(4))),
        cost_usd=draw(st.decimals(min_value=0, max_value=10**6, places=9)),
        outcome=draw(st.sampled_from(OUTCOMES)),
        error_type=draw(_NAMES),
        started_at=started,
        ended_at=draw(_AWARE),
        latency_ms=draw(_MS),
        ttft_ms=draw(_MS),
        retries=draw(st.integers(0, 50)),
        fallback_path=tuple(draw(st.lists(_STEPS, max_size=4))),
        stream=draw(st.booleans()),
        id=draw(st.text(min_size=1, max_size=40)),
    )


_EXAMPLE = LedgerEntry(
    Attribution("Ørg", "ディビジョン", None, 'squad "q"\n', "élodie", "key_☃", None, "run", None),
    requested_model=None,
    served_model="claude-sonnet-4-5",
    cost_usd=Decimal("0.000000001"),
    outcome="error",
    error_type=None,
    started_at=datetime(2026, 3, 18, 13, 30, tzinfo=timezone(timedelta(hours=1, minutes=30))),
    ended_at=datetime(2026, 3, 18, 12, 0, 0, 0, tzinfo=UTC),  # microsecond 0
    latency_ms=None,
    fallback_path=("claude-opus-4-5:529", "claude-sonnet-4-5:timeout", "claude-sonnet-4-5:ok"),
    stream=True,
)


@given(_entries())
@example(_EXAMPLE)
@example(LedgerEntry(ALICE, started_at=T0, ended_at=T0, cost_usd=Decimal(0)))
def test_an_entry_survives_its_row_line_unchanged(entry: LedgerEntry) -> None:
    for time in (time_for("sqlite"), time_for("postgresql")):
        back, reservation = _through_line(entry, time)
        assert back == entry
        assert reservation is None
        assert back.started_at is not None and back.started_at.tzinfo is UTC


def test_a_row_line_is_flat_and_keeps_the_reservation() -> None:
    reservation = Reservation(
        "res_1", Decimal("0.25"), (Hold(3, "dev", 250_000_000, None), Hold(4, "team", 7, "ls_9"))
    )
    entry = LedgerEntry(ALICE, "haiku", started_at=T0, ended_at=T0, cost_usd=Decimal("1.5"))
    line = row_line(row_json(entry_row(entry, time_for("postgresql"))), reservation)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
    rec = json.loads(line)
    assert rec["row"][:3] == [entry.id, sqlite_time(T0), sqlite_time(T0)]
    assert 1_500_000_000 in rec["row"]  # the cost in nano-dollars
    assert Reservation.from_json(rec["r"]) == reservation
    # Only JSON's own types: what is not one is a bug, never written as some text.
    with pytest.raises(TypeError):
        row_json((*entry_row(entry, time_for("postgresql"))[:-1], Decimal(1)))


def test_a_naive_time_is_taken_as_utc() -> None:
    naive = datetime(2026, 3, 18, 12, 0, 1)
    entry = LedgerEntry(ALICE, started_at=naive, ended_at=naive, cost_usd=Decimal(0))
    back, _ = _through_line(entry, time_for("sqlite"))
    assert back.started_at == as_utc(naive) == back.ended_at


def _never_committed(ledger: Ledger) -> None:
    """Journal lines written, their commits dropped: what a SIGKILL before the writer's
    batch leaves (the journal is kept by close, its records being unfinished)."""
    ledger.store.committer.enqueue = lambda job, what: None  # type: ignore[method-assign]


def test_journaled_rows_reconcile_to_the_entries_returned_and_settle_once(
    database: Database, tmp_path: Path
) -> None:
    acc = Accounting(database, journal_dir=tmp_path, pepper=b"p")
    acc.budgets.define(BudgetSpec("dev", "developer", "alice", Decimal(5), "month"))
    _never_committed(acc.ledger)
    queued = [
        acc.ledger.journal_and_queue(
            LedgerEntry(
                ALICE,
                "haiku",
                "claude-haiku-4-5",
                usage=Usage(10, 5),
                started_at=T0 + timedelta(seconds=i),
                latency_ms=12.5,
                fallback_path=("claude-haiku-4-5:ok",),
            ),
            reservation=acc.budgets.reserve(ALICE, "claude-haiku-4-5", Decimal("0.5")),
        )
        for i in range(5)
    ]
    acc.close()
    assert acc.ledger.entries() == []

    again = Accounting(database, journal_dir=tmp_path, pepper=b"p")
    try:
        reconciled = again.start()
        assert sorted(reconciled, key=lambda e: e.id) == sorted(queued, key=lambda e: e.id)
        stored = {e.id: e for e in again.ledger.entries()}
        assert stored == {e.id: e for e in queued}  # what was journaled is what was stored
        (status,) = again.budgets.status()
        assert status.spent_usd == 5 * HAIKU_CALL and status.reserved_usd == 0
        assert again.start() == []
        assert list(tmp_path.rglob("*.jsonl")) == []
    finally:
        again.close()


def _dead_journal(ledger: Ledger, lines: list[dict[str, Any]]) -> Path:
    """A journal as a dead process left it (no lock held)."""
    ledger.journal_dir.mkdir(parents=True, exist_ok=True)
    path = ledger.journal_dir / f"{os.getpid() + 1}-0ldf0rm5.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_dead_process_journal_reconciles(database: Database, tmp_path: Path) -> None:
    """An ``open`` stream with ``usage`` progress is reconciled; ``done`` ones are left
    alone; ``row`` lines are committed as they are; a cut last line is skipped."""
    acc = Accounting(database, journal_dir=tmp_path, pepper=b"p")
    acc.budgets.define(BudgetSpec("dev", "developer", "alice", Decimal(5), "month"))
    held = acc.budgets.reserve(ALICE, "claude-haiku-4-5", Decimal("0.5"))
    done = LedgerEntry(ALICE, "haiku", started_at=T0, ended_at=T0, cost_usd=Decimal(0))
    stream = LedgerEntry(ALICE, "haiku", "claude-haiku-4-5", started_at=T0, stream=True)
    row_entry = LedgerEntry(
        ALICE, "haiku", started_at=T0, ended_at=T0, cost_usd=Decimal(1), latency_ms=0.0
    )
    path = _dead_journal(
        acc.ledger,
        [
            {"op": "open", "id": done.id, "entry": done.to_json(), "reservation": None},
            {"op": "open", "id": stream.id, "entry": stream.to_json(), "reservation": None},
            {
                "op": "usage",
                "id": stream.id,
                "t": (T0 + timedelta(seconds=2)).isoformat(),
                "u": [10, 5, 0, 0],
            },
            {"op": "done", "ids": [done.id]},
        ],
    )
    with path.open("ab") as f:
        f.write(row_line(row_json(entry_row(row_entry, time_for("sqlite"))), held))
        f.write(b'{"op":"row","row":["cut sho')  # the crash's last, partial line
    try:
        reconciled = {e.id: e for e in acc.start()}
        assert set(reconciled) == {stream.id, row_entry.id}
        assert reconciled[row_entry.id] == row_entry
        crashed = reconciled[stream.id]
        assert (crashed.outcome, crashed.error_type) == ("reconciled", "gateway_crash")
        assert crashed.usage == Usage(10, 5) and crashed.cost_usd == HAIKU_CALL
        assert crashed.ended_at == T0 + timedelta(seconds=2)
        assert {e.id: e for e in acc.ledger.entries()} == reconciled
        (status,) = acc.budgets.status()
        assert status.reserved_usd == 0 and status.spent_usd == 1  # the row's hold settled
        assert not path.exists()
    finally:
        acc.close()


def test_a_complete_entry_is_not_copied(database: Database, tmp_path: Path) -> None:
    ledger = Ledger(database, journal_dir=tmp_path)
    entry = LedgerEntry(
        ALICE, started_at=T0, ended_at=T0, cost_usd=Decimal(0), latency_ms=0.0, outcome="ok"
    )
    assert ledger.journal_and_queue(entry) is entry
    assert ledger.append(replace(entry, id="another")).id == "another"
    other = replace(entry, id="third")
    assert ledger.append(other) is other
    ledger.close()


def test_the_gateways_entry_is_complete_with_its_end_from_the_latency(
    database: Database, tmp_path: Path
) -> None:
    record = CallRecord(
        request_id="req_1",
        started_at=T0,
        caller=Caller(key_id="key_a", developer="alice", team="payments", attribution=ALICE),
        client_format="anthropic",
        requested_model="claude-haiku-4-5",
        served_model="claude-haiku-4-5",
        provider="anthropic",
        usage=Usage(10, 5),
        cost_usd=HAIKU_CALL,
        latency_ms=1234.5,
        attempts=[Attempt("claude-haiku-4-5", "anthropic", 200, None, 1234.5)],
        outcome="ok",
        status=200,
    )
    entry = ledger_entry(record)
    assert entry.ended_at == T0 + timedelta(milliseconds=1234.5)
    ledger = Ledger(database, journal_dir=tmp_path)
    assert ledger.journal_and_queue(entry) is entry  # nothing for the ledger to fill in
    ledger.close()
