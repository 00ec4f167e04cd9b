"""The ledger's rollups, once folded, equal a ``GROUP BY`` over its raw rows, on SQLite and
PostgreSQL, whatever the rows and however they were written: appended and waited for,
queued for the writer, from many threads at once, over many batches, in a batch retried
row by row, and backfilled by the migration. Ledger totals read from the rollups equal
the same question asked of the raw rows, for any span (whole days from the rollups, the
ends raw), before the new rows are folded, after, and while a fold commits; on
PostgreSQL a transaction still open when a later one commits holds the mark back."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, func, select, text, union_all

from orchestra.accounting import (
    AccountingStore,
    Attribution,
    Ledger,
    LedgerEntry,
    LedgerMatch,
    UnknownDimension,
    ledger_totals,
)
from orchestra.accounting.ledger.entries import INSERT, entry_row
from orchestra.accounting.ledger_totals import above_mark, read_above_mark, rollup_for
from orchestra.accounting.rollups import (
    Folder,
    fold,
    fold_all,
    fold_until_caught_up,
    read_mark,
    rebuild_rollups,
)
from orchestra.providers import Usage
from orchestra.store import Database
from orchestra.store.database import alembic_config, migrate
from orchestra.store.statements import time_for
from orchestra.store.tables.gateway import GatewayLedgerEntry as L
from orchestra.store.tables.ledger_rollups import KEYS, ROLLUP_TABLES, SUMS

BASE = datetime(2026, 3, 17, 0, 0, tzinfo=UTC)
NAMES = st.sampled_from([None, "a", "b"])


@st.composite
def entries(draw: st.DrawFn) -> LedgerEntry:
    """A call with any attribution (values shared often enough to fall in one group)."""
    squad = draw(NAMES)
    who = Attribution(
        org=draw(st.sampled_from([None, "acme"])),
        division=draw(NAMES),
        tribe=draw(NAMES),
        squad=squad,
        developer=draw(st.sampled_from([None, "alice", "bob", "carol"])),
        key_id=draw(NAMES),
        agent=draw(NAMES),
        run_id=draw(st.sampled_from([None, "run-1", "run-2"])),
    )
    # Minutes over three days: rows just before and after midnight, in one group or two.
    start = BASE + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60 - 1)))
    return LedgerEntry(
        who,
        requested_model=draw(st.sampled_from([None, "opus", "haiku"])),
        served_model=draw(st.sampled_from([None, "opus", "sonnet"])),
        provider=draw(NAMES),
        tier=draw(NAMES),
        usage=Usage(*(draw(st.integers(0, 10**9)) for _ in range(4))),
        cost_usd=Decimal(draw(st.integers(0, 10**12))) / 10**9,
        outcome=draw(st.sampled_from(["ok", "error", "client_disconnected", "rate_limited"])),
        started_at=start,
        ended_at=start + timedelta(seconds=1),
        latency_ms=1000.0,
    )


def _below_mark(conn: Any) -> Any:
    """The ledger rows already folded (below the rollups' mark)."""
    mark = read_mark(conn)
    if conn.dialect.name == "postgresql":
        return text(f"gateway_ledger.txid IS NULL OR gateway_ledger.txid < {mark}")
    return text(f"gateway_ledger.rowid <= {mark}")


def unfolded(db: Database) -> int:
    """How many ledger rows wait above the mark."""
    with db.engine.connect() as conn:
        above = above_mark(read_mark(conn), [], conn.dialect.name)
        return int(conn.scalar(select(func.count()).select_from(L).where(*above)))


Rollups = dict[str, dict[tuple[str, ...], list[int]]]
"""Each rollup table's rows: key columns to sums."""


def fold_everything(db: Database) -> None:
    """Fold until no row waits above the mark (on PostgreSQL another test's transaction on
    the same server can hold the mark back for a while)."""
    store = AccountingStore(db)
    try:
        fold_until_caught_up(store.write_engine, timeout_s=60)
    finally:
        store.close()


def expected(db: Database) -> Rollups:
    """Every rollup as a GROUP BY over the raw rows folded so far (all of them on SQLite
    once the writer's store closed; on PostgreSQL a transaction of another test on the
    same server can hold the mark back), computed here in Python."""
    with db.engine.connect() as conn:
        return _expected(conn)


def _expected(conn: Connection) -> Rollups:
    out: Rollups = {t: {} for t in KEYS}
    rows = conn.execute(select(L).where(_below_mark(conn))).all()
    for r in rows:
        at = r.started_at if r.started_at.tzinfo else r.started_at.replace(tzinfo=UTC)
        values = {
            "day": at.astimezone(UTC).date().isoformat(),
            "model": r.served_model or r.requested_model or "",
            **{k: getattr(r, k) or "" for k in ("org", "division", "tribe", "squad")},
            **{k: getattr(r, k) or "" for k in ("developer", "key_id", "agent", "tier")},
            "provider": r.provider or "",
            "run_id": r.run_id or "",
        }
        sums = [
            1,
            int(r.outcome == "error"),
            r.input_tokens,
            r.output_tokens,
            r.cache_read_tokens,
            r.cache_write_tokens,
            r.cost_nano,
        ]
        for table, keys in KEYS.items():
            key = tuple(values[k] for k in keys)
            acc = out[table].setdefault(key, [0] * len(SUMS))
            for i, v in enumerate(sums):
                acc[i] += v
    return out


def stored(db: Database) -> Rollups:
    """Every rollup as stored."""
    with db.engine.connect() as conn:
        return _stored(conn)


def _stored(conn: Connection) -> Rollups:
    out: Rollups = {}
    for name, table in ROLLUP_TABLES.items():
        width = len(KEYS[name])
        out[name] = {
            tuple(row[:width]): [int(v) for v in row[width:]] for row in conn.execute(select(table))
        }
    return out


def stored_and_expected(db: Database) -> tuple[Rollups, Rollups]:
    """:func:`stored` and :func:`expected` read in one snapshot, for a test whose folder
    may fold beside it: read one after the other (and table by table: PostgreSQL's READ
    COMMITTED gives each statement a snapshot of its own), a fold committed in between
    shows one rollup folded and another not (a fresh-clone CI run saw it)."""
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        else:  # a read transaction: SQLite's WAL gives it one snapshot from its first read
            conn.exec_driver_sql("BEGIN")
        try:
            return _stored(conn), _expected(conn)
        finally:
            conn.rollback()


def _clear(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM gateway_ledger"))
        # The ledger is append-only; after rows are deleted, rebuild (it resets the mark:
        # SQLite would number new rows from 1 again, below the old mark).
        rebuild_rollups(conn)


def _write(ledger: Ledger, batches: list[list[LedgerEntry]]) -> None:
    """Each batch another way: appended one by one, queued, or appended from threads."""
    for i, batch in enumerate(batches):
        if i % 3 == 0:
            for entry in batch:
                ledger.append(entry)
        elif i % 3 == 1:
            for entry in batch:
                ledger.journal_and_queue(entry)
            ledger.flush()
        else:
            threads = [threading.Thread(target=ledger.append, args=(e,)) for e in batch]
            for t in threads:
                t.start()
            for t in threads:
                t.join()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(st.lists(entries(), max_size=8), min_size=1, max_size=4), data=st.data())
def test_rollups_equal_a_group_by_over_the_rows(
    database: Database, tmp_path: Path, batches: list[list[LedgerEntry]], data: st.DataObject
) -> None:
    _clear(database)
    store = AccountingStore(database)
    ledger = Ledger(store, journal_dir=tmp_path / "journal")
    try:
        _write(ledger, batches)
    finally:
        ledger.close()
        store.close()
    assert stored(database) == expected(database)
    if database.engine.dialect.name == "sqlite":
        assert unfolded(database) == 0  # closing the store folded what it wrote
    # Any question a rollup holds, any span: the rollups (whole days) and the raw ends
    # answer as the raw rows.
    keys = data.draw(st.sampled_from([*sorted(KEYS.values()), ("day", "agent", "key_id", "tier")]))
    by = data.draw(st.lists(st.sampled_from([*keys, "month"]), max_size=2, unique=True))
    where = data.draw(
        st.lists(
            st.builds(
                LedgerMatch,
                st.lists(st.sampled_from(keys[1:]), min_size=1, max_size=2).map(tuple),
                st.sampled_from(["", "a", "alice", "run-1", "opus"]),
            ),
            max_size=2,
        )
    )
    moments = st.none() | st.integers(-60, 4 * 24 * 60).map(lambda m: BASE + timedelta(minutes=m))
    since, until = data.draw(moments), data.draw(moments)
    with database.engine.connect() as conn:
        fast = ledger_totals(conn, by=by, where=where, since=since, until=until)
        raw = ledger_totals(conn, by=by, where=where, since=since, until=until, raw=True)
    assert fast == raw


def test_a_question_no_rollup_holds_is_asked_of_the_raw_rows(database: Database) -> None:
    assert rollup_for({"agent", "run_id"}) is None
    assert rollup_for({"day", "developer", "model"}) == "ledger_rollup_model"
    with database.engine.connect() as conn, pytest.raises(UnknownDimension):
        ledger_totals(conn, by=("colour",))


def test_a_batch_retried_row_by_row_adds_only_the_rows_it_stored(
    database: Database, tmp_path: Path
) -> None:
    _clear(database)
    store = AccountingStore(database)
    ledger = Ledger(store, journal_dir=tmp_path / "journal")
    who = Attribution(org="acme", developer="alice")
    try:
        first = ledger.append(LedgerEntry(who, usage=Usage(1, 1), cost_usd=Decimal("0.5")))
        # A queued entry whose id is taken fails its batch; the batch is retried row by row
        # and the other entries are stored (and summed) without it.
        ledger.journal_and_queue(
            LedgerEntry(who, usage=Usage(9, 9), cost_usd=Decimal("9"), id=first.id)
        )
        for _ in range(3):
            ledger.journal_and_queue(LedgerEntry(who, usage=Usage(1, 1), cost_usd=Decimal("1")))
        ledger.flush()
    finally:
        ledger.close()
        store.close()
    assert stored(database) == expected(database)
    with database.engine.connect() as conn:
        (totals,) = ledger_totals(conn).values()
    assert (totals.calls, totals.cost_nano) == (4, 3_500_000_000)


def test_the_migration_backfills_the_rows_written_before_it(
    database: Database, tmp_path: Path
) -> None:
    _clear(database)
    store = AccountingStore(database, rollups=False)  # as before the rollups existed
    ledger = Ledger(store, journal_dir=tmp_path / "journal")
    try:
        for i in range(40):
            ledger.journal_and_queue(
                LedgerEntry(
                    Attribution(developer=f"dev-{i % 3}", run_id=f"run-{i % 5}"),
                    served_model=("opus", "haiku")[i % 2],
                    usage=Usage(i, 2 * i),
                    cost_usd=Decimal(i) / 7,
                    outcome=("ok", "error")[i % 4 == 0],
                    started_at=BASE + timedelta(hours=5 * i),
                    ended_at=BASE + timedelta(hours=5 * i),
                )
            )
        ledger.flush()
    finally:
        ledger.close()
        store.close()
    assert all(not rows for rows in stored(database).values())
    command.downgrade(alembic_config(database.engine), "0003_gateway")
    migrate(database.engine)
    assert stored(database) == expected(database)
    assert sum(len(rows) for rows in stored(database).values()) > 0


def _group_sizes(totals: dict[Any, Any]) -> dict[Any, int]:
    sizes: dict[Any, int] = defaultdict(int)
    for key, t in totals.items():
        sizes[key] += t.calls
    return sizes


@pytest.mark.parametrize("by", [("developer", "month"), ("day",), ("run_id",), ("model", "tier")])
def test_totals_by_dimension_from_rollups_match_raw_rows(
    database: Database, tmp_path: Path, by: tuple[str, ...]
) -> None:
    _clear(database)
    store = AccountingStore(database)
    ledger = Ledger(store, journal_dir=tmp_path / "journal")
    try:
        for i in range(60):
            ledger.journal_and_queue(
                LedgerEntry(
                    Attribution(developer=("alice", "bob", None)[i % 3], run_id=f"r{i % 4}"),
                    served_model=("opus", None)[i % 2],
                    tier=("t1", "t2")[i % 2],
                    usage=Usage(i, i),
                    cost_usd=Decimal(i) / 1000,
                    started_at=BASE + timedelta(hours=7 * i, minutes=13),
                    ended_at=BASE + timedelta(hours=7 * i, minutes=13),
                )
            )
        ledger.flush()
    finally:
        ledger.close()
        store.close()
    since, until = BASE + timedelta(days=2, hours=5), BASE + timedelta(days=12, hours=20)
    with database.engine.connect() as conn:
        fast = ledger_totals(conn, by=by, since=since, until=until)
        raw = ledger_totals(conn, by=by, since=since, until=until, raw=True)
    assert fast == raw
    assert sum(_group_sizes(fast).values()) == sum(
        1 for i in range(60) if since <= BASE + timedelta(hours=7 * i, minutes=13) < until
    )


def test_rows_are_folded_into_their_utc_day_whatever_the_times_zone(
    database: Database, tmp_path: Path
) -> None:
    _clear(database)
    india = timezone(timedelta(hours=5, minutes=30))
    starts = [
        datetime(2026, 3, 18, 2, 0, tzinfo=india),  # 20:30 UTC on the 17th
        datetime(2026, 3, 17, 23, 0, tzinfo=UTC),
        datetime(2026, 3, 17, 22, 0, tzinfo=UTC),
        datetime(2026, 3, 18, 6, 0, tzinfo=india),  # 00:30 UTC on the 18th
    ]
    store = AccountingStore(database)
    ledger = Ledger(store, journal_dir=tmp_path / "journal")
    try:
        for start in starts:
            entry = _entry(outcome="error")
            ledger.append(LedgerEntry(entry.attribution, **{**_fields(entry), "started_at": start}))
    finally:
        ledger.close()
        store.close()
    fold_everything(database)
    days = {key[0]: sums for key, sums in stored(database)["ledger_rollup_model"].items()}
    assert days == {"2026-03-17": [3, 3, 3, 6, 9, 12, 15], "2026-03-18": [1, 1, 1, 2, 3, 4, 5]}


def _fields(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "served_model": entry.served_model,
        "usage": entry.usage,
        "cost_usd": entry.cost_usd,
        "outcome": entry.outcome,
        "ended_at": entry.ended_at,
    }


def _calls(n: int, offset: int = 0) -> list[LedgerEntry]:
    return [
        LedgerEntry(
            Attribution(developer=("alice", "bob", None)[i % 3], run_id=f"r{i % 4}"),
            served_model=("opus", None)[i % 2],
            usage=Usage(i, i),
            cost_usd=Decimal(i) / 1000,
            started_at=BASE + timedelta(hours=7 * i + offset, minutes=13),
            ended_at=BASE + timedelta(hours=7 * i + offset, minutes=13),
        )
        for i in range(n)
    ]


def _totals_match_raw(db: Database) -> None:
    since, until = BASE + timedelta(days=2, hours=5), BASE + timedelta(days=12, hours=20)
    with db.engine.connect() as conn:
        for by in [("developer", "month"), ("day",), ("run_id",), ()]:
            for where in [[], [LedgerMatch(("developer",), "alice")]]:
                for span in [(since, until), (None, None)]:
                    fast = ledger_totals(conn, by=by, where=where, since=span[0], until=span[1])
                    raw = ledger_totals(
                        conn, by=by, where=where, since=span[0], until=span[1], raw=True
                    )
                    assert fast == raw, (by, where, span)


def test_totals_count_the_rows_not_yet_folded(database: Database, tmp_path: Path) -> None:
    _clear(database)
    store = AccountingStore(database)
    ledger = Ledger(store, journal_dir=tmp_path / "journal")
    try:
        for entry in _calls(30):
            ledger.journal_and_queue(entry)
        ledger.flush()
        store.fold_rollups()
    finally:
        ledger.close()
        store.close()
    folded = stored(database)
    assert folded == expected(database)
    # On PostgreSQL another test's transaction on the server can hold the mark back.
    waiting = unfolded(database)
    # A writer that does not fold: its rows wait above the mark, counted all the same.
    idle = AccountingStore(database, rollups=False)
    ledger = Ledger(idle, journal_dir=tmp_path / "journal-2")
    try:
        for entry in _calls(30, offset=3):
            ledger.journal_and_queue(entry)
        ledger.flush()
    finally:
        ledger.close()
        idle.close()
    assert stored(database) == folded == expected(database)
    assert unfolded(database) == waiting + 30
    _totals_match_raw(database)
    fold_all(AccountingStore(database).write_engine)
    assert stored(database) == expected(database)
    _totals_match_raw(database)


def test_a_fold_committed_during_a_read_is_not_counted_twice(
    database: Database, tmp_path: Path
) -> None:
    _clear(database)
    idle = AccountingStore(database, rollups=False)
    ledger = Ledger(idle, journal_dir=tmp_path / "journal")
    try:
        for entry in _calls(20):
            ledger.journal_and_queue(entry)
        ledger.flush()
    finally:
        ledger.close()
        idle.close()
    table = ROLLUP_TABLES["ledger_rollup_model"]
    marks: list[int] = []

    def query(mark: int, mark_now: Any) -> Any:
        marks.append(mark)
        if len(marks) == 1:  # another process folds between reading the mark and the sums
            fold_everything(database)
        rolled = select(func.coalesce(func.sum(table.c.calls), 0), mark_now)
        tail = (
            select(func.count(), mark_now)
            .select_from(L)
            .where(*above_mark(mark, [], database.engine.dialect.name))
        )
        return union_all(rolled, tail)

    with database.engine.connect() as conn:
        rows = read_above_mark(conn, query)
        assert sum(int(row[0]) for row in rows) == 20
        assert len(marks) == 2 and marks[1] == read_mark(conn) != marks[0]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_transaction_still_open_holds_the_mark_back(database: Database) -> None:
    """PostgreSQL writers commit in any order: rows of a transaction that began before a
    fold and commits after it are still folded, once, by a later fold. (SQLite has one
    writer at a time: its row numbers are commit order.)"""
    _clear(database)
    time = time_for("postgresql")
    early, late = _calls(2)
    with database.engine.connect() as first:
        first.begin()
        INSERT.run_many(first, [entry_row(early, time)])  # its transaction id is lower
        with database.engine.begin() as second:
            INSERT.run_many(second, [entry_row(late, time)])
        with database.engine.begin() as conn:
            fold(conn)
        assert not any(stored(database).values())  # the later row waits for the earlier
        assert unfolded(database) == 1
        _totals_match_raw(database)
        first.commit()
    fold_all(AccountingStore(database).write_engine)
    assert stored(database) == expected(database)
    _totals_match_raw(database)


def _entry(outcome: str) -> LedgerEntry:
    who = Attribution(org="acme", developer="alice", run_id="run-1")
    return LedgerEntry(
        who,
        served_model="opus",
        usage=Usage(1, 2, 3, 4),
        cost_usd=Decimal(5) / 10**9,
        outcome=outcome,
        started_at=BASE,
        ended_at=BASE,
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_folder_that_fails_says_so_once_and_again_when_it_works(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    _clear(database)
    with database.engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger_rollup_marks RENAME TO marks_away"))
    folder = Folder(database.engine, interval_s=0.01)
    try:
        with caplog.at_level(logging.WARNING, logger="orchestra.accounting.ledger"):
            for _ in range(5):  # five pokes, each failing: one warning for the streak
                folder.poke()
                time.sleep(0.05)
            with database.engine.begin() as conn:
                conn.execute(text("ALTER TABLE marks_away RENAME TO ledger_rollup_marks"))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                "works again" in r.getMessage() for r in caplog.records
            ):
                time.sleep(0.05)
    finally:
        folder.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("failed" in m for m in messages) == 1
    assert sum("works again" in m for m in messages) == 1
