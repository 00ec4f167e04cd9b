"""The ledger: one append-only entry per model call, durable before ``append`` returns.

**Durability.** ``append`` returns once the entry's transaction has committed (SQLite in
WAL mode, or PostgreSQL): a SIGKILL of the process afterwards cannot lose it. Concurrent
appends share a transaction (group commit, see :class:`orchestra.store.GroupCommitter`),
and an entry can settle its budget reservation in that same transaction, so spend and
ledger never disagree.

**Streams.** ``open_stream`` writes the draft entry to a small append-only journal file
(``<home>/ledger-journal/<database>/<pid>-<id>.jsonl``, see :mod:`.journal`) before the
upstream call and appends one line whenever the usage seen so far changes.
``reconcile_incomplete`` (run at startup, see :mod:`.reconciliation`) turns what dead
processes left unfinished into entries.

**Finished calls committed later.** ``journal_and_queue`` journals a finished call as one
``row`` line and hands its commit to the writer thread without waiting (:mod:`.writer`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from orchestra.accounting.audit import AuditLog
from orchestra.accounting.budgets import BudgetBook, Reservation
from orchestra.accounting.budgets.reservations import Plan
from orchestra.accounting.errors import UnknownPrice
from orchestra.accounting.ledger.bounds import bounded
from orchestra.accounting.ledger.entries import (
    OUTCOMES,
    LedgerEntry,
    entry_from_row,
    entry_row,
    reservation_json,
    row_json,
)
from orchestra.accounting.ledger.journal import Journal, open_line, row_line
from orchestra.accounting.ledger.reconciliation import reconcile_journals
from orchestra.accounting.ledger.streams import StreamRecord
from orchestra.accounting.ledger.writer import BatchRows, EntryQueue
from orchestra.accounting.pricing import PriceTable
from orchestra.accounting.store import (
    AccountingStore,
    Clock,
    UnreadableText,
    read_rows,
    time_for,
    utcnow,
)
from orchestra.config.paths import orchestra_home
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayLedgerEntry

log = logging.getLogger("orchestra.accounting.ledger")


class Ledger:
    """Append entries durably, journal streams, reconcile after a crash, read entries back."""

    def __init__(
        self,
        db: Database | AccountingStore,
        *,
        prices: PriceTable | None = None,
        budgets: BudgetBook | None = None,
        journal_dir: Path | None = None,
        journal_max_bytes: int = 8_000_000,
        clock: Clock = utcnow,
        audit: AuditLog | None = None,
    ) -> None:
        self._store = AccountingStore.of(db)
        self._audit = audit
        self.unreadable_rows = 0
        """Damaged ledger rows this process has read (reported, not fatal), for ``/metrics``."""
        self.quarantined = 0
        """Journal records this process moved to quarantine at start-up (see
        :meth:`reconcile_incomplete`), for ``/metrics``."""
        self._prices = prices
        self._budgets = budgets
        self.clock = clock
        """The ledger's clock (times of entries and journal lines)."""
        self._time = time_for(self._store.dialect)
        url = self._store.db.engine.url.render_as_string(hide_password=True)
        digest = hashlib.sha256(url.encode()).hexdigest()[:12]
        self.journal_dir = (journal_dir or orchestra_home() / "ledger-journal") / digest
        self._journal: Journal | None = None
        self._journal_lock = threading.Lock()
        self._queue = EntryQueue(self._store, budgets)
        """Journaled entries waiting for the writer (see :meth:`journal_and_queue`)."""
        self.journal_max_bytes = journal_max_bytes
        """The journal is compacted once it outgrows this (see :class:`Journal`)."""

    @property
    def store(self) -> AccountingStore:
        """The store (database and writer) the ledger writes to."""
        return self._store

    # -- writing -------------------------------------------------------------------

    def _complete(self, entry: LedgerEntry, reservation: Reservation | None = None) -> LedgerEntry:
        """``entry`` with what it lacks filled in (times, cost, latency) and every value
        the database could refuse repaired (:func:`~.bounds.bounded`); itself if complete."""
        return bounded(self._filled(entry, reservation))

    def _filled(self, entry: LedgerEntry, reservation: Reservation | None) -> LedgerEntry:
        started, ended = entry.started_at, entry.ended_at
        if started is None or ended is None:
            now = self.clock()
            started = started or now
            ended = ended or now
        cost = entry.cost_usd
        if cost is None:
            cost = Decimal(0)
            model = entry.served_model or entry.requested_model
            if self._prices is not None and model and entry.usage.total_tokens:
                try:
                    cost = self._prices.cost(model, entry.usage)
                except UnknownPrice:
                    # Unknown is never free: charge what was reserved (the most the call
                    # could cost when it was admitted) and say so.
                    cost = reservation.estimate_usd if reservation is not None else Decimal(0)
                    log.error(
                        "no price for model %s: ledger entry %s charged its reservation $%s",
                        model,
                        entry.id,
                        cost,
                    )
        latency = entry.latency_ms
        if latency is None:
            latency = (ended - started).total_seconds() * 1000
        outcome, error_type = entry.outcome, entry.error_type
        if outcome not in OUTCOMES:
            # Never lose an entry over a label: keep it as an error and say what it was.
            log.warning("unknown ledger outcome %r recorded as error", outcome)
            outcome, error_type = "error", error_type or outcome
        if (
            started is entry.started_at
            and ended is entry.ended_at
            and cost is entry.cost_usd
            and latency is entry.latency_ms
            and outcome is entry.outcome
        ):
            return entry  # complete already: no copy
        return replace(
            entry,
            started_at=started,
            ended_at=ended,
            cost_usd=cost,
            latency_ms=latency,
            outcome=outcome,
            error_type=error_type,
        )

    def _to_settle(self, reservation: Reservation | None) -> Reservation | None:
        """``reservation`` when storing its entry must settle it (budgets kept here, and
        something held), else ``None``."""
        if self._budgets is None or reservation is None or reservation.empty:
            return None
        return reservation

    def _job(
        self, entry: LedgerEntry, reservation: Reservation | None
    ) -> Callable[[Connection], Plan | None]:
        """The database work of storing ``entry`` (and settling ``reservation``)."""
        held = self._to_settle(reservation)
        settle = (
            self._budgets.settle_job(held, entry.cost_usd)
            if self._budgets is not None and held is not None
            else None
        )
        row = entry_row(entry, self._time)  # immutable: a failed batch may run the job again
        store = self._store
        committer = store.committer

        def job(conn: Connection) -> Plan | None:
            BatchRows.of(committer.batch, store).add(row)
            return settle(conn) if settle is not None else None

        return job

    def append(self, entry: LedgerEntry, *, reservation: Reservation | None = None) -> LedgerEntry:
        """Store ``entry`` (and settle ``reservation`` to its cost); returns after commit."""
        entry = self._complete(entry, reservation)
        plan = self._store.committer.run(self._job(entry, reservation))
        if plan is not None and self._budgets is not None:
            self._budgets.emit_alerts(plan)
        return entry

    async def aappend(
        self,
        entry: LedgerEntry,
        *,
        reservation: Reservation | None = None,
        deferred: bool = False,
    ) -> LedgerEntry:
        """:meth:`append` without blocking the event loop. ``deferred``: the entry is
        durable elsewhere already (a journal), so its commit may wait for the next batch
        (up to a few milliseconds)."""
        entry = self._complete(entry, reservation)
        plan = await self._store.committer.arun(self._job(entry, reservation), deferred=deferred)
        if plan is not None and self._budgets is not None:
            self._budgets.emit_alerts(plan)
        return entry

    def journal_and_queue(
        self, entry: LedgerEntry, *, reservation: Reservation | None = None
    ) -> LedgerEntry:
        """Store a finished call without waiting for the database: durable on return (one
        ``row`` journal line with the entry and its reservation), committed with the
        writer's next batch, which settles ``reservation`` and marks the entry done in the
        journal. A crash before that commits it at the next start (``reconcile_incomplete``).

        Raises only before the journal line is written (then nothing was stored: append
        the entry another way); after it, a failure to queue is logged and left to
        reconciliation, so the entry can never be stored twice.
        """
        entry = self._complete(entry, reservation)
        # One set of values for both: the row the writer inserts, and the journal's copy.
        row = entry_row(entry, self._time)
        text = row_json(row)
        line = row_line(text, reservation)
        journal = self._current_journal()
        settle = self._to_settle(reservation)
        journal.write_line("row", entry.id, line)
        try:
            self._queue.put((journal, entry.id, row, text, settle))
        except Exception:
            log.exception("ledger entry %s stays in the journal until the next start", entry.id)
        return entry

    def queue(self, entry: LedgerEntry) -> LedgerEntry:
        """Store an entry that costs nothing and settles nothing (a refused call) with the
        writer's next batch, without waiting and without a journal line: the cheapest
        write there is, for a path a client may hit in a loop. Not durable until that
        batch commits (within ``defer_s``): a crash before it loses the row, and no money
        with it."""
        entry = self._complete(entry)
        row = entry_row(entry, self._time)
        self._queue.put((None, entry.id, row, row_json(row), None))
        return entry

    # -- streams -------------------------------------------------------------------

    def _current_journal(self) -> Journal:
        journal = self._journal
        if journal is not None:
            return journal
        with self._journal_lock:
            if self._journal is None:
                self._journal = Journal(self.journal_dir, max_bytes=self.journal_max_bytes)
            return self._journal

    def journal_write(self, op: str, sid: str, record: dict[str, Any]) -> None:
        """Append one record line to this process's journal (see :mod:`.journal`)."""
        self._current_journal().write(op, sid, record)

    @property
    def unfinished(self) -> int:
        """Calls this process journaled whose entries are not committed yet (streams in
        progress, queued entries)."""
        journal = self._journal
        return journal.open_streams if journal is not None else 0

    @property
    def journal_compactions(self) -> int:
        """How many times this process's journal was compacted."""
        journal = self._journal
        return journal.compactions if journal is not None else 0

    @property
    def journal_size(self) -> int:
        """Bytes in this process's journal file now (0 before its first use)."""
        journal = self._journal
        return journal.size if journal is not None else 0

    def open_stream(
        self, draft: LedgerEntry, *, reservation: Reservation | None = None
    ) -> StreamRecord:
        """Journal ``draft`` before the upstream call; finish the returned record at the end."""
        return self._open(replace(draft, stream=True), reservation, pending=False)

    def open_pending(
        self, entry: LedgerEntry, *, reservation: Reservation | None = None
    ) -> StreamRecord:
        """Journal a call that has finished but whose database commit comes later (e.g.
        after the answer was sent): durable on return, and reconciled after a crash with
        its own ``stream`` flag. Finish the returned record to commit it."""
        return self._open(entry, reservation, pending=True)

    def open_call(self, draft: LedgerEntry, *, reservation: Reservation | None = None) -> None:
        """Journal a call before its upstream request (an ``open`` line), so that a crash at
        any later moment leaves its entry (``reconciled`` at the next start). Whatever
        stores the call with the same id ends the line: :meth:`journal_and_queue` (its
        ``row`` line takes the open line's place), :meth:`open_stream` (likewise), or
        :meth:`aappend` / :meth:`append` followed by :meth:`end_open`.

        The line holds the draft's row values (as a ``row`` line does): one C-encoded
        tuple, cheap enough for every call."""
        if draft.started_at is None:
            draft = replace(draft, started_at=self.clock())
        # Not bounded here: the line holds any text (ASCII-escaped JSON), and reconciliation
        # bounds the entry it stores, as every entry is.
        text = row_json(entry_row(draft, self._time))
        self._current_journal().write_line("open", draft.id, open_line(draft.id, text, reservation))

    def end_open(self, entry_id: str) -> None:
        """Mark the open line of ``entry_id`` done (its entry is committed); nothing when
        it has none."""
        journal = self._journal
        if journal is not None and journal.is_live(entry_id):
            self.journal_write("done", entry_id, {"op": "done", "id": entry_id})

    def _open(
        self, draft: LedgerEntry, reservation: Reservation | None, *, pending: bool
    ) -> StreamRecord:
        draft = replace(draft, started_at=draft.started_at or self.clock())
        self.journal_write(
            "open",
            draft.id,
            {
                "op": "open",
                "id": draft.id,
                "entry": draft.to_json(),
                "reservation": reservation_json(reservation),
            },
        )
        return StreamRecord(self, draft, reservation, pending=pending)

    def reconcile_incomplete(self) -> list[LedgerEntry]:
        """Turn unfinished streams of dead processes into ``reconciled`` entries (and commit
        the finished calls they journaled); returns the entries stored. A record that
        cannot be stored is quarantined (logged, counted in :attr:`quarantined`, audited):
        it never blocks start-up."""
        own = self._journal.path if self._journal is not None else None
        done = reconcile_journals(self.journal_dir, self._store.db, self._commit_all, own=own)
        for q in done.quarantined:
            self.quarantined += 1
            log.error(
                "LEDGER ENTRY QUARANTINED: record %s of journal %s could not be stored (%s); "
                "it was moved to %s: inspect it and store it by hand if it is a real call",
                q.record,
                q.journal,
                q.reason,
                q.file,
            )
            if self._audit is not None:
                try:
                    self._audit.append(
                        "system",
                        "ledger.quarantine",
                        q.record,
                        {
                            "journal": q.journal,
                            "reason": ascii(q.reason)[:500],
                            "file": q.file.name,
                        },
                    )
                except Exception:
                    log.exception("the quarantine of ledger record %s was not audited", q.record)
        return done.stored

    def _commit_all(
        self, todo: list[tuple[LedgerEntry, Reservation | None]]
    ) -> list[tuple[LedgerEntry, Reservation | None, BaseException | None]]:
        """Store ``todo`` all at once through the writer (one transaction for many); each
        entry as stored, or with the error that kept it out (its reservation is then
        settled on its own: the call happened)."""
        out: list[tuple[LedgerEntry, Reservation | None, BaseException | None]] = []
        waiting: list[tuple[LedgerEntry, Reservation | None, Future[Plan | None]]] = []
        for entry, reservation in todo:
            try:
                entry = self._complete(entry, reservation)
                job = self._job(entry, reservation)
            except Exception as exc:  # a journaled value no entry can hold
                out.append((entry, reservation, exc))
                continue
            waiting.append((entry, reservation, self._store.committer.submit(job)))
        for entry, reservation, future in waiting:
            try:
                plan = future.result()
            except Exception as exc:
                out.append((entry, reservation, exc))
                self._settle_apart(entry, reservation)
                continue
            if plan is not None and self._budgets is not None:
                self._budgets.emit_alerts(plan)
            out.append((entry, reservation, None))
        return out

    def _settle_apart(self, entry: LedgerEntry, reservation: Reservation | None) -> None:
        held = self._to_settle(reservation)
        if held is None or self._budgets is None:
            return
        try:
            self._budgets.settle(held, entry.cost_usd or Decimal(0))
        except Exception:
            log.exception(
                "the reservation of quarantined entry %s stays held until it expires", entry.id
            )

    # -- reading -------------------------------------------------------------------

    def flush(self) -> None:
        """Return once every entry this process queued (:meth:`journal_and_queue`) has
        committed: the reads below then see this process's own calls."""
        self._store.committer.flush()

    def entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        run_id: str | None = None,
        developer: str | None = None,
    ) -> list[LedgerEntry]:
        """Entries by start time (oldest first), optionally within ``[since, until)``, of one
        run or one developer; this process's queued entries included (committed first)."""
        self.flush()
        query = select(*GatewayLedgerEntry.__table__.columns).order_by(
            GatewayLedgerEntry.started_at, GatewayLedgerEntry.id
        )
        if since is not None:
            query = query.where(GatewayLedgerEntry.started_at >= since)
        if until is not None:
            query = query.where(GatewayLedgerEntry.started_at < until)
        if run_id is not None:
            query = query.where(GatewayLedgerEntry.run_id == run_id)
        if developer is not None:
            query = query.where(GatewayLedgerEntry.developer == developer)
        if limit is not None:
            query = query.limit(limit)
        with self._store.db.engine.connect() as conn:
            rows = read_rows(conn, query)  # a damaged row reported below, not fatal
        out: list[LedgerEntry] = []
        for r in rows:
            try:
                entry = entry_from_row(r)
            except Exception as exc:  # a value no entry can hold: report, read on
                self._report_unreadable(str(r.id), f"{type(exc).__name__}: {exc}")
                continue
            if any(type(v) is UnreadableText for v in r):
                bad = [c for c, v in zip(r._fields, r, strict=True) if type(v) is UnreadableText]
                self._report_unreadable(str(r.id), f"not UTF-8 in {', '.join(bad)}")
            out.append(entry)
        return out

    def _report_unreadable(self, entry_id: str, why: str) -> None:
        self.unreadable_rows += 1
        log.error(
            "ledger row %s is damaged (%s): read with its bad bytes escaped; repair the row",
            ascii(entry_id),
            why,
        )

    def close(self) -> None:
        """Commit the queued entries (:meth:`journal_and_queue`), then release this
        process's journal (deleted when no stream is unfinished)."""
        if self._journal is not None:
            try:
                self._store.committer.flush()
            except Exception:
                log.exception("queued ledger entries not committed: the journal keeps them")
        with self._journal_lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
