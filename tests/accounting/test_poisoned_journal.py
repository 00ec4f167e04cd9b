"""A poisoned journal never blocks start-up (issue 16 #1): values a database refuses are
repaired at the ledger's door, and a record the database still refuses is quarantined."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from orchestra.accounting import Accounting, Attribution, BudgetSpec, LedgerEntry
from orchestra.accounting.ledger.entries import entry_row, row_json
from orchestra.accounting.ledger.journal import open_line, row_line
from orchestra.accounting.store import time_for
from orchestra.providers import Usage
from orchestra.store import Database

T0 = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
ALICE = Attribution(org="acme", squad="payments", developer="alice", key_id="key_a")

HOSTILE: dict[str, dict[str, Any]] = {
    # what an ordinary authenticated call could carry before the gateway checked its input
    "agent-300": {"attribution": ALICE.for_call(agent="a" * 300)},
    "model-300": {"requested_model": "claude-sonnet-" + "x" * 300},
    "model-nul": {"requested_model": "claude-sonnet-\x004-5"},
    "model-surrogate": {"requested_model": "claude-sonnet-\ud8004-5"},
    "step-surrogate-nul": {"attribution": ALICE.for_call(step="st\x00ep\udfff" * 60)},
}


def _hostile(case: str, **more: Any) -> LedgerEntry:
    values: dict[str, Any] = {"attribution": ALICE, "served_model": "claude-haiku-4-5"}
    values.update(HOSTILE[case])
    values.update(more)
    return LedgerEntry(usage=Usage(10, 5), **values)


def _storable(value: str | None, limit: int = 200) -> bool:
    if value is None:
        return True
    value.encode("utf-8")  # raises on a lone surrogate
    return "\x00" not in value and len(value) <= limit


def _assert_repaired(entry: LedgerEntry) -> None:
    a = entry.attribution
    for value in (*a.as_dict().values(), entry.requested_model, entry.served_model):
        assert _storable(value)


@pytest.fixture
def acc(database: Database, tmp_path: Path) -> Iterator[Accounting]:
    accounting = Accounting(database, journal_dir=tmp_path / "journal", pepper=b"p")
    yield accounting
    accounting.close()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_values_are_stored_repaired_on_every_path(
    acc: Accounting, database: Database, tmp_path: Path, case: str
) -> None:
    """Queued (the gateway's finished calls), appended and streamed: each is stored, with
    its values bounded and escaped, and the next start is clean."""
    ledger = acc.ledger
    acc.budgets.define(BudgetSpec("dev", "developer", "alice", Decimal(5), "month"))
    held = acc.budgets.reserve(ALICE, "claude-haiku-4-5", Decimal("0.5"))
    queued = ledger.journal_and_queue(_hostile(case), reservation=held)
    appended = asyncio.run(ledger.aappend(_hostile(case)))
    stream = ledger.open_stream(_hostile(case))
    stream.progress(Usage(10, 3))
    streamed = stream.finish(usage=Usage(10, 5))
    stored = {e.id: e for e in ledger.entries()}
    assert set(stored) == {queued.id, appended.id, streamed.id}
    for entry in stored.values():
        _assert_repaired(entry)
    original = _hostile(case)
    if "agent" in case:
        assert stored[queued.id].attribution.agent == "a" * 199 + "…"
    if "model" in case and "300" not in case:
        assert stored[queued.id].requested_model == original.requested_model.encode(
            "utf-8", "backslashreplace"
        ).decode().replace("\x00", "\\x00")
    assert ledger.unfinished == 0
    (status,) = acc.budgets.status()
    assert status.reserved_usd == 0 and status.spent_usd > 0  # settled with its entry
    acc.close()
    again = Accounting(database, journal_dir=tmp_path / "journal", pepper=b"p")
    try:
        assert again.start() == []
    finally:
        again.close()


def _dead_journal(acc: Accounting, lines: list[bytes]) -> Path:
    """A journal left by a dead process (no lock held)."""
    folder = acc.ledger.journal_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.getpid() + 7}-p0150ned.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def _raw_row_line(entry: LedgerEntry, dialect: str) -> bytes:
    """A ``row`` line as a gateway without the ledger's bounds journaled it."""
    return row_line(row_json(entry_row(entry, time_for(dialect))), None)


def test_a_journal_poisoned_before_the_fix_is_repaired_at_start(
    acc: Accounting, database: Database
) -> None:
    """Rows, open streams and calls opened before their upstream request, journaled with
    every hostile value (the journal holds any text): start-up stores them all, repaired,
    and deletes the journal."""
    dialect = database.engine.dialect.name
    rows = [
        _hostile(case, started_at=T0, ended_at=T0, cost_usd=Decimal("0.01"), latency_ms=1.0)
        for case in sorted(HOSTILE)
    ]
    streams = [_hostile(case, started_at=T0, stream=True) for case in sorted(HOSTILE)]
    calls = [_hostile(case, started_at=T0) for case in sorted(HOSTILE)]  # before upstream
    lines = [_raw_row_line(e, dialect) for e in rows]
    for draft in streams:
        record = {"op": "open", "id": draft.id, "entry": draft.to_json(), "reservation": None}
        lines.append((json.dumps(record) + "\n").encode())
    for draft in calls:
        lines.append(open_line(draft.id, row_json(entry_row(draft, time_for(dialect))), None))
    path = _dead_journal(acc, lines)
    reconciled = acc.start()
    assert {e.id for e in reconciled} == {e.id for e in rows + streams + calls}
    stored = acc.ledger.entries()
    assert len(stored) == len(rows) + len(streams) + len(calls)
    for entry in stored:
        _assert_repaired(entry)
    assert not path.exists()
    assert acc.ledger.quarantined == 0


def _refuse_agent(database: Database, agent: str) -> None:
    """A database that refuses one row whatever its values look like (a trigger)."""
    with database.engine.begin() as conn:
        if database.engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_one BEFORE INSERT ON gateway_ledger "
                    f"WHEN NEW.agent = '{agent}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.agent = '{agent}' THEN RAISE EXCEPTION 'refused'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_one BEFORE INSERT ON gateway_ledger "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_one()"
                )
            )


def test_a_record_the_database_refuses_is_quarantined_and_start_up_goes_on(
    acc: Accounting, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    dialect = database.engine.dialect.name
    _refuse_agent(database, "refused")
    acc.budgets.define(BudgetSpec("dev", "developer", "alice", Decimal(5), "month"))
    held = acc.budgets.reserve(ALICE, "claude-haiku-4-5", Decimal("0.5"))
    good = LedgerEntry(ALICE, "haiku", started_at=T0, ended_at=T0, cost_usd=Decimal(0))
    bad = LedgerEntry(
        ALICE.for_call(agent="refused"),
        "haiku",
        started_at=T0,
        ended_at=T0 + timedelta(seconds=1),
        cost_usd=Decimal("0.2"),
    )
    path = _dead_journal(
        acc,
        [
            _raw_row_line(good, dialect),
            row_line(row_json(entry_row(bad, time_for(dialect))), held),
            b'{"op":"row","row":[1,2,3]}\n',  # whole JSON, not a row this version reads
            b'{"op":"usage","id":"x"',  # cut short by the crash: skipped
        ],
    )
    with caplog.at_level(logging.ERROR, logger="orchestra.accounting.ledger"):
        reconciled = acc.start()
    assert [e.id for e in reconciled] == [good.id]
    assert [e.id for e in acc.ledger.entries()] == [good.id]
    assert not path.exists()
    assert acc.ledger.quarantined == 2
    assert sum("QUARANTINED" in r.getMessage() for r in caplog.records) == 2
    (quarantine,) = (path.parent / "quarantine").glob("*.jsonl")
    kept = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert {k.get("id") for k in kept} == {None, bad.id}
    assert next(k for k in kept if k.get("id") == bad.id)["entry"]["cost_usd"] == "0.2"
    audited = acc.audit.list(action="ledger.quarantine")
    assert sorted(e.target for e in audited) == sorted([bad.id, "line 3"])
    (status,) = acc.budgets.status()
    assert status.reserved_usd == 0 and status.spent_usd == Decimal("0.2")  # the call cost
    assert acc.start() == []  # nothing left to retry at the next start
