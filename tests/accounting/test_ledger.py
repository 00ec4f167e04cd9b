from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestra.accounting import (
    Accounting,
    Attribution,
    BudgetExceeded,
    BudgetSpec,
    Ledger,
    LedgerEntry,
    StreamRecord,
)
from orchestra.providers import Usage
from orchestra.store import Database, GroupCommitter, open_database

from .conftest import FakeClock

ALICE = Attribution(
    org="acme",
    squad="payments",
    developer="alice",
    key_id="key_a",
    agent="tester",
    run_id="run-7",
    step="red",
)


def test_append_is_readable_back_with_computed_cost_and_all_fields(accounting: Accounting) -> None:
    entry = LedgerEntry(
        ALICE,
        requested_model="sonnet",
        served_model="claude-sonnet-4-5",
        provider="anthropic",
        tier="sonnet",
        usage=Usage(
            input_tokens=1000, output_tokens=500, cache_read_tokens=2000, cache_write_tokens=100
        ),
        ttft_ms=12.5,
        retries=1,
        fallback_path=("claude-opus-4-5:529", "claude-sonnet-4-5:ok"),
        stream=False,
    )
    stored = accounting.ledger.append(entry)
    # 1000*3 + 500*15 + 2000*0.30 + 100*3.75 per million
    assert stored.cost_usd == Decimal("0.011475")
    (back,) = accounting.ledger.entries()
    assert back.id == entry.id and back.attribution == ALICE
    assert back.usage == entry.usage and back.cost_usd == Decimal("0.011475")
    assert back.fallback_path == entry.fallback_path and back.retries == 1 and back.ttft_ms == 12.5
    assert back.outcome == "ok" and back.tier == "sonnet" and back.provider == "anthropic"


def test_append_settles_the_reservation_in_the_same_transaction(accounting: Accounting) -> None:
    accounting.budgets.define(BudgetSpec("dev", "developer", "alice", Decimal(1)))
    r = accounting.budgets.reserve(ALICE, "claude-haiku-4-5", Decimal("0.5"))
    stored = accounting.ledger.append(
        LedgerEntry(ALICE, "haiku", "claude-haiku-4-5", usage=Usage(10_000, 10_000)), reservation=r
    )
    (status,) = accounting.budgets.status()
    assert status.reserved_usd == 0 and status.spent_usd == stored.cost_usd == Decimal("0.06")


def test_refusals_and_errors_are_recorded_with_their_outcome(
    accounting: Accounting, clock: FakeClock
) -> None:
    accounting.ledger.append(
        LedgerEntry(ALICE, "opus", outcome="budget_refused", error_type="budget:dev")
    )
    clock.advance(seconds=1)
    accounting.ledger.append(
        LedgerEntry(ALICE, "opus", "claude-opus-4-5", outcome="error", error_type="upstream_500")
    )
    assert [e.outcome for e in accounting.ledger.entries()] == ["budget_refused", "error"]
    odd = accounting.ledger.append(LedgerEntry(ALICE, outcome="upstream_error"))
    assert (odd.outcome, odd.error_type) == ("error", "upstream_error")  # kept, never dropped


def test_async_appends_are_group_committed_and_all_durable(accounting: Accounting) -> None:
    async def many() -> None:
        await asyncio.gather(
            *(
                accounting.ledger.aappend(
                    LedgerEntry(ALICE, "m", "claude-haiku-4-5", usage=Usage(i, i))
                )
                for i in range(200)
            )
        )

    asyncio.run(many())
    entries = accounting.ledger.entries()
    assert len(entries) == 200 and len({e.id for e in entries}) == 200


def test_stream_finish_appends_once_and_journals_progress(accounting: Accounting) -> None:
    record = accounting.ledger.open_stream(LedgerEntry(ALICE, "sonnet", "claude-sonnet-4-5"))
    record.first_token()
    record.progress(Usage(100, 1))
    record.progress(Usage(100, 50))
    entry = record.finish(usage=Usage(100, 80))
    assert entry.stream and entry.usage == Usage(100, 80) and entry.ttft_ms is not None
    with pytest.raises(RuntimeError):
        record.finish()
    assert [e.id for e in accounting.ledger.entries()] == [entry.id]
    assert accounting.ledger.reconcile_incomplete() == []  # nothing unfinished


def test_a_live_processes_journal_is_never_reconciled(database: Database, tmp_path: Path) -> None:
    first = Ledger(database, journal_dir=tmp_path)
    second = Ledger(database, journal_dir=tmp_path)
    record = first.open_stream(LedgerEntry(ALICE, "m", "claude-haiku-4-5"))
    record.progress(Usage(5, 5))
    assert second.reconcile_incomplete() == []  # first still holds its journal lock
    record.finish()
    assert len(first.entries()) == 1
    first.close()
    second.close()


CHILD = textwrap.dedent("""
    import os, signal, sys
    from decimal import Decimal
    from pathlib import Path
    from orchestra.accounting import Accounting, Attribution, LedgerEntry
    from orchestra.providers import Usage
    from orchestra.store import open_database

    acc = Accounting(open_database(sys.argv[1]), journal_dir=Path(sys.argv[2]), pepper=b"p")
    who = Attribution(developer="alice", squad="payments", agent="implementer")
    done = acc.ledger.append(LedgerEntry(who, "haiku", "claude-haiku-4-5", usage=Usage(1000, 100)))
    r = acc.budgets.reserve(who, "claude-sonnet-4-5", Decimal("0.50"))
    draft = LedgerEntry(who, "sonnet", "claude-sonnet-4-5", provider="anthropic")
    stream = acc.ledger.open_stream(draft, reservation=r)
    stream.first_token()
    for n in range(1, 41):
        stream.progress(Usage(input_tokens=2000, output_tokens=n * 25))
    print(done.id, stream.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_sigkill_mid_stream_is_reconciled_on_restart(tmp_path: Path, clock: FakeClock) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    journal = tmp_path / "journal"
    db = open_database(url)
    setup = Accounting(db, journal_dir=journal, pepper=b"p")
    setup.budgets.define(BudgetSpec("dev", "developer", "alice", Decimal(5), "month"))
    setup.close()

    child = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(journal)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    completed_id, stream_id = child.stdout.split()

    acc = Accounting(db, journal_dir=journal, pepper=b"p")
    try:
        (status,) = acc.budgets.status()
        assert status.reserved_usd == Decimal("0.5")  # the dead stream's hold is still there
        reconciled = acc.start()
        assert [e.id for e in reconciled] == [stream_id]
        entries = {e.id: e for e in acc.ledger.entries()}
        assert set(entries) == {completed_id, stream_id}  # the completed call survived the kill
        crashed = entries[stream_id]
        assert crashed.outcome == "reconciled" and crashed.stream
        assert crashed.usage == Usage(
            input_tokens=2000, output_tokens=1000
        )  # the last progress seen
        assert crashed.cost_usd == Decimal("0.021")  # 2000 * $3 + 1000 * $15 per million
        assert crashed.attribution.agent == "implementer"
        (status,) = acc.budgets.status()
        assert status.reserved_usd == 0
        assert status.spent_usd == crashed.cost_usd  # settled to what was streamed
        assert acc.start() == []  # reconciling twice adds nothing
        assert list(journal.rglob("*.jsonl")) == []
    finally:
        acc.close()
        db.dispose()


def test_journal_stays_small_and_unfinished_streams_survive_close(
    database: Database, tmp_path: Path
) -> None:
    ledger = Ledger(database, journal_dir=tmp_path, journal_max_bytes=100)
    ledger.open_stream(LedgerEntry(ALICE, "m", "claude-haiku-4-5")).finish()
    b = ledger.open_stream(LedgerEntry(ALICE, "m", "claude-haiku-4-5"))
    c = ledger.open_stream(LedgerEntry(ALICE, "m", "claude-haiku-4-5"))
    b.finish()
    (path,) = ledger.journal_dir.glob("*.jsonl")
    assert path.stat().st_size > 100  # c is still open: nothing may be dropped
    c.finish()
    assert path.stat().st_size == 0  # nothing unfinished left: started afresh
    d = ledger.open_stream(LedgerEntry(ALICE, "m", "claude-haiku-4-5"))
    d.progress(Usage(7, 3))
    ledger.close()  # shutting down with a stream in flight keeps its journal
    other = Ledger(database, journal_dir=tmp_path)
    (reconciled,) = other.reconcile_incomplete()
    assert reconciled.id == d.id and reconciled.usage == Usage(7, 3)
    assert len(other.entries()) == 4
    other.close()


def test_a_failing_batch_is_retried_entry_by_entry(accounting: Accounting) -> None:
    """A duplicate id fails its batch; every other entry of the batch is still stored."""
    first = accounting.ledger.append(LedgerEntry(ALICE, "m", "claude-haiku-4-5"))

    async def burst() -> list[object]:
        entries = [
            LedgerEntry(ALICE, "m", "claude-haiku-4-5", usage=Usage(i, i)) for i in range(20)
        ]
        entries.insert(7, LedgerEntry(ALICE, "m", "claude-haiku-4-5", id=first.id))
        return await asyncio.gather(
            *(accounting.ledger.aappend(e) for e in entries), return_exceptions=True
        )

    results = asyncio.run(burst())
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert len(accounting.ledger.entries()) == 21


def test_journal_stays_bounded_under_sustained_overlapping_calls(
    database: Database, tmp_path: Path
) -> None:
    """Under sustained load some stream is always open, so the journal is never empty;
    it must still stay bounded (compaction), and a crash after many compactions still
    reconciles exactly the unfinished calls with their last usage."""
    ledger = Ledger(database, journal_dir=tmp_path, journal_max_bytes=20_000)
    window: list[tuple[StreamRecord, Usage]] = []
    finished, largest = 0, 0
    for _ in range(400):
        # Non-streamed calls journaled before their commit, interleaved with streams.
        pending = ledger.open_pending(LedgerEntry(ALICE, "haiku", "claude-haiku-4-5"))
        record = ledger.open_stream(LedgerEntry(ALICE, "sonnet", "claude-sonnet-4-5"))
        window.append((record, Usage(100, 0)))
        for i, (open_record, usage) in enumerate(window):
            usage = Usage(usage.input_tokens, usage.output_tokens + 7)
            open_record.progress(usage)
            window[i] = (open_record, usage)
        pending.finish()
        finished += 1
        if len(window) > 8:  # calls overlap: at least 8 streams are open at every moment
            oldest, usage = window.pop(0)
            oldest.finish(usage=usage)
            finished += 1
        largest = max(largest, ledger.journal_size)
    assert ledger.journal_compactions > 0
    assert ledger.unfinished == len(window) == 8
    # Bounded by the threshold plus what is unfinished, not by the hours of traffic.
    assert largest <= 20_000 + 2 * 9 * 1_000
    (path,) = ledger.journal_dir.glob("*.jsonl")
    assert path.stat().st_size == ledger.journal_size
    unfinished = {r.id: u for r, u in window}
    ledger.close()  # what a SIGKILL leaves behind: the journal with its open streams
    other = Ledger(database, journal_dir=tmp_path)
    reconciled = other.reconcile_incomplete()
    assert {e.id: e.usage for e in reconciled} == unfinished
    assert all(e.outcome == "reconciled" and e.stream for e in reconciled)
    assert len(other.entries()) == finished + len(unfinished)
    assert list(tmp_path.rglob("*.jsonl*")) == []
    other.close()


def test_a_pending_non_streamed_call_is_reconciled_as_not_streamed(
    database: Database, tmp_path: Path
) -> None:
    ledger = Ledger(database, journal_dir=tmp_path)
    call = LedgerEntry(ALICE, "haiku", "claude-haiku-4-5", usage=Usage(10, 20), stream=False)
    streamed = ledger.open_stream(LedgerEntry(ALICE, "haiku", "claude-haiku-4-5"))
    pending = ledger.open_pending(call)
    ledger.close()  # killed before either was committed
    other = Ledger(database, journal_dir=tmp_path)
    found = {e.id: e for e in other.reconcile_incomplete()}
    assert found[pending.id].stream is False
    assert found[pending.id].usage == Usage(10, 20)
    assert found[streamed.id].stream is True
    other.close()


def test_a_compaction_file_left_by_a_dead_process_is_removed(
    database: Database, tmp_path: Path
) -> None:
    ledger = Ledger(database, journal_dir=tmp_path)
    ledger.journal_dir.mkdir(parents=True)
    leftover = ledger.journal_dir / "123-deadbeef.jsonl.compact"
    leftover.write_text('{"op":"open"}\n')
    assert ledger.reconcile_incomplete() == []
    assert not leftover.exists()
    ledger.close()


def test_an_entry_survives_its_journal_form_unchanged() -> None:
    entry = LedgerEntry(
        ALICE,
        requested_model="opus",
        served_model="claude-sonnet-4-5",
        provider="anthropic",
        tier="opus",
        usage=Usage(1, 2, cache_read_tokens=3, cache_write_tokens=4),
        cost_usd=Decimal("0.000123"),
        outcome="error",
        error_type="upstream_529",
        started_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        ended_at=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
        latency_ms=12.5,
        ttft_ms=3.25,
        retries=1,
        fallback_path=("claude-opus-4-1:529", "claude-sonnet-4-5:ok"),
        stream=True,
    )
    assert LedgerEntry.from_json(json.loads(json.dumps(entry.to_json()))) == entry


def test_a_deferred_commit_rides_along_with_the_next_batch(accounting: Accounting) -> None:
    """Work already durable elsewhere (journaled entries) waits for the next transaction
    instead of taking one of its own; it is never dropped, even at shutdown."""
    committer = GroupCommitter(accounting.store.write_engine, defer_s=30)
    seen: dict[str, int] = {}

    def job(name: str) -> Callable[[Any], str]:
        def run(_conn: Any) -> str:
            seen[name] = id(committer.batch)
            return name

        return run

    async def scenario() -> None:
        deferred = asyncio.ensure_future(committer.arun(job("deferred"), deferred=True))
        await asyncio.sleep(0.2)
        assert not deferred.done()  # no transaction of its own
        assert await committer.arun(job("reservation")) == "reservation"
        assert await deferred == "deferred"
        assert seen["deferred"] == seen["reservation"]  # one transaction for both
        late = asyncio.ensure_future(committer.arun(job("late"), deferred=True))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(committer.close)  # shutting down commits it
        assert await late == "late"

    asyncio.run(scenario())


def test_an_inline_reservation_never_waits_for_another_writer(tmp_path: Path) -> None:
    """On SQLite a reservation runs on the caller's thread when nothing else writes; when
    another process holds the write lock it does not wait there but goes to the writer."""
    import sqlite3

    url = f"sqlite:///{tmp_path / 'inline.db'}"
    db = open_database(url)
    acc = Accounting(db, journal_dir=tmp_path / "j", pepper=b"p")
    try:
        acc.budgets.define(BudgetSpec("dev", "developer", "alice", Decimal(1), "month"))
        committer = acc.store.committer
        assert committer.try_inline(lambda conn: 7) == ("done", 7)
        other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process is writing
        started = time.monotonic()
        assert committer.try_inline(lambda conn: 7) == ("busy", None)
        assert time.monotonic() - started < 1  # did not wait for the lock

        async def reserve() -> Any:
            return await acc.budgets.areserve(ALICE, "claude-haiku-4-5", Decimal("0.4"))

        async def scenario() -> Any:
            pending = asyncio.ensure_future(reserve())
            await asyncio.sleep(0.2)
            assert not pending.done()  # queued for the writer, which waits for the lock
            other.execute("COMMIT")
            return await pending

        reservation = asyncio.run(scenario())
        assert not reservation.empty
        with pytest.raises(BudgetExceeded):  # inline refusals are refusals too
            asyncio.run(reserve()) and asyncio.run(reserve())
        (status,) = acc.budgets.status()
        assert status.reserved_usd == Decimal("0.8")  # two granted, the third refused
        other.close()
    finally:
        acc.close()
        db.dispose()
