"""The ledger's rollups equal a ``GROUP BY`` over its raw rows, on SQLite and PostgreSQL,
whatever the rows and however they were written: appended and waited for, queued for the
writer, from many threads at once, over many batches, in a batch retried row by row, and
backfilled by the migration. Ledger totals read from the rollups equal the same question
asked of the raw rows, for any span (whole days from the rollups, the ends raw)."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from orchestra.accounting import (
    AccountingStore,
    Attribution,
    Ledger,
    LedgerEntry,
    LedgerMatch,
    UnknownDimension,
    ledger_totals,
)
from orchestra.accounting.ledger.entries import entry_row
from orchestra.accounting.ledger.rollups import batch_sums
from orchestra.accounting.ledger_totals import rollup_for
from orchestra.providers import Usage
from orchestra.store import Database
from orchestra.store.database import alembic_config, migrate
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


def expected(db: Database) -> dict[str, dict[tuple[str, ...], list[int]]]:
    """Every rollup as a GROUP BY over the raw rows, computed here in Python."""
    out: dict[str, dict[tuple[str, ...], list[int]]] = {t: {} for t in KEYS}
    with db.engine.connect() as conn:
        rows = conn.execute(select(L)).all()
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


def stored(db: Database) -> dict[str, dict[tuple[str, ...], list[int]]]:
    """Every rollup as stored."""
    out: dict[str, dict[tuple[str, ...], list[int]]] = {}
    with db.engine.connect() as conn:
        for name, table in ROLLUP_TABLES.items():
            width = len(KEYS[name])
            out[name] = {
                tuple(row[:width]): [int(v) for v in row[width:]]
                for row in conn.execute(select(table))
            }
    return out


def _clear(db: Database) -> None:
    with db.engine.begin() as conn:
        for table in ("gateway_ledger", *KEYS):
            conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608


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


def test_a_batch_is_summed_per_utc_day_whatever_the_times_zone() -> None:
    # PostgreSQL's rows hold datetimes (aware, or naive UTC), SQLite's UTC text.
    india = timezone(timedelta(hours=5, minutes=30))
    starts = [
        datetime(2026, 3, 18, 2, 0, tzinfo=india),  # 20:30 UTC on the 17th
        datetime(2026, 3, 17, 23, 0),  # naive: UTC
        "2026-03-17 22:00:00.000000",
        datetime(2026, 3, 18, 6, 0, tzinfo=india),  # 00:30 UTC on the 18th
    ]
    row = entry_row(_entry(outcome="error"), lambda t: t)
    rows = [(row[0], start, *row[2:]) for start in starts]
    days = {key[0]: sums for key, sums in batch_sums(rows)["ledger_rollup_model"].items()}
    assert days == {"2026-03-17": [3, 3, 3, 6, 9, 12, 15], "2026-03-18": [1, 1, 1, 2, 3, 4, 5]}


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
