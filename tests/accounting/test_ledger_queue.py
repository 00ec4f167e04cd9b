"""Finished calls journaled with one line and committed by the writer without a waiter
(``Ledger.journal_and_queue``): durable, committed once, reconciled once after a crash."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text

from orchestra.accounting import Accounting, Attribution, BudgetSpec, Ledger, LedgerEntry
from orchestra.accounting.store import AccountingStore, as_utc, sqlite_time
from orchestra.providers import Usage
from orchestra.store import Database, GroupCommitter
from orchestra.store.tables.gateway import GatewayLedgerEntry

from .conftest import FakeClock
from .test_ledger_rollups import stored_and_expected

ALICE = Attribution(org="acme", squad="payments", developer="alice", key_id="key_a")
HAIKU_CALL = Decimal("0.000035")  # 10 in + 5 out tokens of claude-haiku-4-5 ($1 / $5 per M)


def _lines(journal_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(journal_dir.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _call(**changes: Any) -> LedgerEntry:
    return LedgerEntry(ALICE, "haiku", "claude-haiku-4-5", usage=Usage(10, 5), **changes)


def _slow_store(db: Database) -> AccountingStore:
    """A store whose writer commits queued entries only when something else commits (or
    after a minute): the tests decide when batches happen."""
    store = AccountingStore(db)
    store.committer.close()
    store.committer = GroupCommitter(store.write_engine, defer_s=60)
    return store


def test_queued_calls_are_committed_settled_and_marked_done_once(
    accounting: Accounting, tmp_path: Path
) -> None:
    accounting.budgets.define(BudgetSpec("dev", "developer", "alice", Decimal(1), "month"))
    reservations = [
        accounting.budgets.reserve(ALICE, "claude-haiku-4-5", Decimal("0.01")) for _ in range(30)
    ]
    (held,) = accounting.budgets.status()

    async def calls() -> list[LedgerEntry]:
        async def one(i: int) -> LedgerEntry:
            await asyncio.sleep(0)
            return accounting.ledger.journal_and_queue(_call(), reservation=reservations[i])

        return await asyncio.gather(*(one(i) for i in range(30)))

    queued = asyncio.run(calls())
    accounting.store.committer.flush()
    stored = {e.id: e for e in accounting.ledger.entries()}
    assert set(stored) == {e.id for e in queued}
    assert all(stored[e.id] == e for e in queued)  # what was journaled is what was stored
    (status,) = accounting.budgets.status()
    assert status.reserved_usd == held.reserved_usd - 30 * Decimal("0.01")  # all settled
    assert status.spent_usd == 30 * HAIKU_CALL
    assert accounting.ledger.unfinished == 0
    lines = _lines(tmp_path / "journal")
    finals = [r["row"][0] for r in lines if r["op"] == "row"]  # the id is the row's first
    done = [sid for r in lines if r["op"] == "done" for sid in r["ids"]]
    assert sorted(finals) == sorted(done) == sorted(e.id for e in queued)  # each once


def test_journal_lines_are_one_per_call_plus_one_per_batch(
    database: Database, tmp_path: Path
) -> None:
    store = _slow_store(database)
    ledger = Ledger(store, journal_dir=tmp_path)

    async def burst(n: int) -> None:
        async def one() -> None:
            await asyncio.sleep(0)
            ledger.journal_and_queue(_call())

        await asyncio.gather(*(one() for _ in range(n)))

    for _ in range(3):  # three bursts of concurrent calls, each committed as one batch
        asyncio.run(burst(100))
        store.committer.flush()
    lines = _lines(tmp_path)
    assert len(lines) == 300 + 3
    assert [len(r["ids"]) for r in lines if r["op"] == "done"] == [100, 100, 100]
    assert len(ledger.entries()) == 300
    ledger.close()
    store.close()
    assert list(tmp_path.rglob("*.jsonl")) == []  # nothing unfinished: the journal is gone


def test_close_commits_every_queued_call_and_removes_the_journal(
    database: Database, tmp_path: Path
) -> None:
    acc = Accounting(_slow_store(database), journal_dir=tmp_path, pepper=b"p")
    for _ in range(50):
        acc.ledger.journal_and_queue(_call())
    other = Ledger(database, journal_dir=tmp_path / "other")  # another process's view
    assert other.entries() == []  # still queued (the writer waits for a batch)
    acc.close()
    assert len(other.entries()) == 50
    assert list(tmp_path.rglob("*.jsonl*")) == []


def test_compaction_keeps_what_batched_done_lines_leave_unfinished(
    database: Database, tmp_path: Path
) -> None:
    """Calls marked done a batch at a time, interleaved with long streams: the journal
    stays bounded and a crash reconciles exactly the streams still open."""
    store = _slow_store(database)
    ledger = Ledger(store, journal_dir=tmp_path, journal_max_bytes=20_000)
    window = []
    largest, calls = 0, 0
    for i in range(300):
        ledger.journal_and_queue(_call())
        calls += 1
        if i % 3 == 0:
            window.append(ledger.open_stream(LedgerEntry(ALICE, "sonnet", "claude-sonnet-4-5")))
        if len(window) > 6:
            window.pop(0).finish(usage=Usage(100, 7))
        if i % 10 == 9:
            store.committer.flush()  # a batch: one done line for its calls
        largest = max(largest, ledger.journal_size)
    store.committer.flush()
    assert ledger.journal_compactions > 0
    assert largest <= 20_000 + 2 * 10 * 1_000
    assert ledger.unfinished == len(window) == 6
    open_ids = {r.id for r in window}
    ledger.close()  # what a SIGKILL leaves behind: the journal with its open streams
    store.close()
    other = Ledger(database, journal_dir=tmp_path)
    reconciled = other.reconcile_incomplete()
    assert {e.id for e in reconciled} == open_ids
    assert len(other.entries()) == calls + 100  # 100 streams: 94 finished, 6 reconciled
    assert list(tmp_path.rglob("*.jsonl*")) == []
    other.close()


def test_a_failed_queued_commit_stays_journaled_and_is_not_stored_twice(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A queued entry whose commit fails (here: its id is taken) is logged, not marked
    done, and reconciliation later finds it stored and leaves it alone."""
    ledger = Ledger(database, journal_dir=tmp_path)
    first = ledger.append(_call())
    ledger.journal_and_queue(_call(id=first.id))
    ledger.journal_and_queue(_call())
    ledger.store.committer.flush()
    assert any("failed" in r.getMessage() for r in caplog.records)
    assert ledger.unfinished == 1  # the failed one only
    ledger.close()
    other = Ledger(database, journal_dir=tmp_path)
    assert other.reconcile_incomplete() == []
    assert len(other.entries()) == 2
    assert list(tmp_path.rglob("*.jsonl")) == []
    other.close()


def test_a_batch_of_queued_entries_alone_keeps_the_good_ones_when_one_fails(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The queued entries of a batch are one writer job; when that job's batch fails (here:
    one entry's id is taken), it runs again alone, each entry in a savepoint: the good
    entries are stored and marked done, the bad one stays journaled for the next start."""
    store = AccountingStore(database)
    store.committer.close()
    store.committer = GroupCommitter(store.write_engine, defer_s=0.01)
    ledger = Ledger(store, journal_dir=tmp_path)
    first = ledger.append(_call())
    good = [_call(), _call()]
    ledger.journal_and_queue(good[0])
    ledger.journal_and_queue(_call(id=first.id))
    ledger.journal_and_queue(good[1])
    deadline = time.monotonic() + 10
    while ledger.unfinished > 1:  # no flush: the writer's own deferred batch, alone
        assert time.monotonic() < deadline
        threading.Event().wait(0.01)
    assert ledger.unfinished == 1  # the entry whose id was taken
    assert any(first.id in r.getMessage() for r in caplog.records)
    with database.session() as session:
        stored = set(session.scalars(select(GatewayLedgerEntry.id)))
    assert stored == {first.id, good[0].id, good[1].id}
    ledger.close()
    store.close()


def test_a_queued_entry_is_stored_exactly_as_bound_values_store_it(
    database: Database, tmp_path: Path
) -> None:
    """On SQLite the writer inserts a batch's rows from one JSON text; the stored values and
    column types must be those of an ``INSERT`` with bound values."""
    ledger = Ledger(database, journal_dir=tmp_path)
    who = Attribution(
        org="acme", squad="zahlungsverkehr-ü", developer="ålice", key_id="key_a", agent='a"b'
    )
    started = datetime(2026, 1, 2, 3, 4, 5, 600_007, tzinfo=UTC)
    queued = ledger.journal_and_queue(
        LedgerEntry(
            who,
            "haiku",
            "claude-haiku-4-5",
            tier="haiku",
            provider="anthropic",
            usage=Usage(12, 3, cache_read_tokens=7, cache_write_tokens=2**40),
            cost_usd=Decimal("123456.123456789"),
            outcome="error",
            error_type="upstream_529",
            started_at=started,
            ended_at=started + timedelta(milliseconds=2),
            latency_ms=2.0,
            ttft_ms=None,
            retries=1,
            fallback_path=("claude-opus-4-5:529", "claude-haiku-4-5:ok"),
            stream=True,
        )
    )
    ledger.flush()
    dialect = database.engine.dialect.name
    bound = replace(queued, id="reference")
    ledger.append(bound)  # a row someone waits for: inserted with bound values
    # ``txid`` is the writing transaction's (two transactions here), not the entry's.
    names = [c.name for c in GatewayLedgerEntry.__table__.columns if c.name not in ("id", "txid")]
    if dialect == "sqlite":
        names = [f"{c}, typeof({c})" for c in names]
    with database.engine.connect() as conn:
        rows = {
            r[0]: tuple(r[1:])
            for r in conn.execute(text(f"SELECT id, {', '.join(names)} FROM gateway_ledger"))  # noqa: S608
        }
    assert rows[queued.id] == rows["reference"]
    assert rows[queued.id][20 if dialect != "sqlite" else 40] == 2.0  # latency_ms in place
    ledger.close()


CHILD = textwrap.dedent("""
    import os, signal, sys
    from decimal import Decimal
    from orchestra.accounting import Accounting, Attribution, LedgerEntry
    from orchestra.accounting.ledger.journal import Journal
    from orchestra.providers import Usage
    from orchestra.store import open_database

    from pathlib import Path
    url, journal, when = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    acc = Accounting(open_database(url), journal_dir=journal, pepper=b"p")
    alice = Attribution(org="acme", squad="payments", developer="alice", key_id="key_a")
    if when == "before-commit":
        acc.store.committer._defer_s = 3600  # queued, and never committed before the kill
    else:  # after the commit, before its done line
        Journal.mark_done = lambda self, ids: os.kill(os.getpid(), signal.SIGKILL)
    reservations = [
        acc.budgets.reserve(alice, "claude-haiku-4-5", Decimal("0.5")) for _ in range(5)
    ]
    for reservation in reservations:
        entry = acc.ledger.journal_and_queue(
            LedgerEntry(alice, "haiku", "claude-haiku-4-5", usage=Usage(10, 5), outcome="error",
                        error_type="upstream_529"),
            reservation=reservation,
        )
        print(entry.id, flush=True)
    if when == "after-commit":
        acc.store.committer.flush()  # commits the batch; its done line kills the process
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("when", ["before-commit", "after-commit"])
def test_a_crash_around_the_commit_of_queued_calls_stores_each_once(
    database_url: str, database: Database, tmp_path: Path, when: str
) -> None:
    journal = tmp_path / "journal"
    setup = Accounting(database, journal_dir=journal, pepper=b"p")
    setup.budgets.define(BudgetSpec("dev", "developer", "alice", Decimal(5), "month"))
    setup.close()

    child = subprocess.run(
        [sys.executable, "-c", CHILD, database_url, str(journal), when],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    ids = child.stdout.split()
    assert len(ids) == 5 and list(journal.rglob("*.jsonl"))

    acc = Accounting(database, journal_dir=journal, pepper=b"p")
    try:
        reconciled = acc.start()
        if when == "before-commit":
            assert sorted(e.id for e in reconciled) == sorted(ids)
        else:
            assert reconciled == []  # committed already: nothing added, nothing failed
        entries = acc.ledger.entries()
        assert sorted(e.id for e in entries) == sorted(ids)  # each exactly once
        # Stored as journaled (the call's own outcome), not as a crashed stream.
        assert {(e.outcome, e.error_type, e.cost_usd) for e in entries} == {
            ("error", "upstream_529", HAIKU_CALL)
        }
        (status,) = acc.budgets.status()
        assert status.spent_usd == 5 * HAIKU_CALL  # settled once each
        folded, summed = stored_and_expected(database)
        assert folded == summed  # the rollups summed each once too
        assert acc.start() == []
        assert list(journal.rglob("*.jsonl")) == []
    finally:
        acc.close()


_TIMES = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31)
) | st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)


@given(_TIMES)
def test_the_sqlite_time_text_is_sqlalchemys(value: datetime) -> None:
    assert sqlite_time(value) == as_utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")


@pytest.mark.parametrize(
    "started",
    [
        datetime(2026, 3, 18, 12, 0, tzinfo=UTC),  # no microseconds
        datetime(2026, 3, 18, 12, 0, 0, 7, tzinfo=UTC),
        datetime(2026, 3, 18, 13, 30, 0, 250_000, tzinfo=timezone(timedelta(hours=1, minutes=30))),
        datetime(2026, 3, 18, 12, 0, 1),  # naive: UTC
    ],
)
def test_rows_read_back_through_sqlalchemy_equal_what_was_written(
    database: Database, tmp_path: Path, clock: FakeClock, started: datetime
) -> None:
    ledger = Ledger(database, journal_dir=tmp_path, clock=clock)
    entry = _call(started_at=started, ended_at=started + timedelta(seconds=1), cost_usd=Decimal(0))
    ledger.journal_and_queue(entry)
    ledger.close()
    with database.session() as session:
        row = session.scalars(select(GatewayLedgerEntry)).one()
    assert as_utc(row.started_at) == as_utc(started)
    assert as_utc(row.ended_at) == as_utc(started) + timedelta(seconds=1)
    (back,) = ledger.entries(since=as_utc(started), until=as_utc(started) + timedelta(hours=1))
    assert back.started_at == as_utc(started)  # range queries compare the stored text right
    if database.engine.dialect.name == "sqlite":
        with database.engine.connect() as conn:
            stored = conn.execute(text("SELECT started_at FROM gateway_ledger")).scalar_one()
        assert stored == as_utc(started).strftime("%Y-%m-%d %H:%M:%S.%f")


def test_a_burst_of_queued_calls_wakes_the_writer_once(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queued work parks without a thread hand-off each: only the first job of a batch
    wakes the writer, and the rest join it until the batch is due."""
    puts: list[object] = []

    class CountingQueue(queue.SimpleQueue[Any]):
        def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
            puts.append(item)
            super().put(item, block, timeout)

    monkeypatch.setattr(queue, "SimpleQueue", CountingQueue)  # the writer's hand-off queue
    store = _slow_store(database)
    ledger = Ledger(store, journal_dir=tmp_path)
    puts.clear()
    for _ in range(200):
        ledger.journal_and_queue(_call())
    assert len(puts) == 1
    store.committer.flush()
    assert len(ledger.entries()) == 200
    ledger.close()
    store.close()


def test_flush_opens_no_transaction_when_nothing_is_queued(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads flush first (read-your-writes); with nothing queued that must not cost a write
    transaction, which on SQLite would take the database's write lock."""
    ledger = Ledger(_slow_store(database), journal_dir=tmp_path)
    committer = ledger.store.committer
    submitted: list[Any] = []
    real_submit = committer.submit

    def counting_submit(fn: Any) -> Any:
        submitted.append(fn)
        return real_submit(fn)

    monkeypatch.setattr(committer, "submit", counting_submit)
    assert ledger.entries() == []
    assert submitted == []  # nothing queued: no batch at all
    ledger.journal_and_queue(_call())
    assert len(ledger.entries()) == 1  # queued: flushed first, then read
    assert len(submitted) == 1
    assert ledger.entries() and len(submitted) == 1  # settled: no batch again
    ledger.close()
