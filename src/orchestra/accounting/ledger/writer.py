"""The ledger's side of the group-commit writer (:class:`orchestra.store.GroupCommitter`):
the rows of a write batch inserted together, and the queue of journaled entries that ride
along with the writer's next batch without anyone waiting for them.

**Finished calls committed later.** :meth:`EntryQueue.put` takes a call already journaled
as one ``row`` line (durable) and hands its commit to the writer thread without waiting;
after each batch commits, one ``done`` line per journal names every entry of the batch.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from orchestra.accounting.budgets import Reservation
from orchestra.accounting.budgets.reservations import Plan
from orchestra.accounting.ledger.entries import COST, INSERT
from orchestra.accounting.store import AccountingStore, Batch

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestra.accounting.budgets import BudgetBook
    from orchestra.accounting.ledger.journal import Journal

log = logging.getLogger("orchestra.accounting.ledger")

QueuedEntry = tuple["Journal | None", str, tuple[Any, ...], str, Reservation | None]
"""An entry waiting for the writer: its journal (``None``: not journaled, see
:meth:`~.ledger.Ledger.queue`), id, row, the row as JSON text (:func:`~.entries.row_json`)
and the reservation it settles (``None``: nothing to settle)."""


def _insert_alone(conn: Connection, item: QueuedEntry) -> bool:
    """Insert one queued entry's row in a savepoint; False (and logged) if it failed."""
    try:
        with conn.begin_nested():
            INSERT.run_many(conn, [item[2]])
    except Exception as exc:
        log.error("ledger entry %s stays in the journal until the next start: %r", item[1], exc)
        return False
    return True


class BatchRows:
    """The ledger rows of the running write batch, inserted together just before its
    commit. The queued entries' rows (:class:`EntryQueue`, the gateway's many calls) go in,
    on SQLite, with one statement that reads them from one JSON text: one call into SQLite
    for all of them, which holds the GIL only to start it. Binding every value of every row
    made the writer take the GIL back once per row, and each time the event loop's thread
    had to stop for it (about a tenth of the gateway's throughput). Rows someone waits for
    (:meth:`~.ledger.Ledger.append`), and every row elsewhere, are bound.

    After the commit the store's folder is woken (:meth:`AccountingStore.rows_written`):
    it folds the new rows into the ledger's rollups (:mod:`orchestra.accounting.rollups`)
    in a transaction of its own."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.texts: list[str] = []
        """Rows already in :func:`~.entries.row_json` form (SQLite only)."""

    def add(self, row: tuple[Any, ...], text: str | None = None) -> None:
        """Insert ``row`` with the batch (from its JSON ``text`` when given)."""
        if text is None:
            self.rows.append(row)
        else:
            self.texts.append(text)

    @classmethod
    def of(cls, batch: Batch, store: AccountingStore) -> BatchRows:
        """The running batch's rows (made, and inserted at its end, on first use)."""
        rows: BatchRows | None = batch.state.get("ledger_rows")
        if rows is None:
            rows = batch.state["ledger_rows"] = cls()
            batch.at_end("ledger_rows", rows.insert)
            batch.after_commit("ledger_rows", store.rows_written)
        return rows

    def insert(self, conn: Connection) -> None:
        """Insert every row of the batch."""
        INSERT.run_json(conn, self.texts)  # queued entries, in number
        INSERT.run_many(conn, self.rows)  # entries someone waits for, a few


class _Committed:
    """What follows the commit of a batch of queued entries (on the writer thread): one
    ``done`` line per journal for all of them, and their budget alerts."""

    def __init__(self, budgets: BudgetBook | None) -> None:
        self.budgets = budgets
        self.ids: dict[Journal, list[str]] = {}
        self.plans: list[Plan] = []

    @classmethod
    def of_batch(cls, batch: Batch, budgets: BudgetBook | None) -> _Committed:
        """The running batch's instance (made, and run after its commit, on first use)."""
        committed: _Committed | None = batch.state.get("ledger_committed")
        if committed is None:
            committed = batch.state["ledger_committed"] = cls(budgets)
            batch.after_commit("ledger_committed", committed.run)
        return committed

    def run(self) -> None:
        if self.budgets is not None:
            for plan in self.plans:
                self.budgets.emit_alerts(plan)
        for journal, ids in self.ids.items():
            journal.mark_done(ids)


class EntryQueue:
    """Journaled entries waiting for the writer: one job per batch takes them all."""

    def __init__(self, store: AccountingStore, budgets: BudgetBook | None) -> None:
        self._store = store
        self._budgets = budgets
        self._queued: list[QueuedEntry] = []
        self._lock = threading.Lock()

    def put(self, item: QueuedEntry) -> None:
        """Queue a journaled entry for the writer's next batch (never waits for it).
        Raises when the writer refuses the work (it is closed): the journal keeps it."""
        with self._lock:
            self._queued.append(item)
            if len(self._queued) == 1:
                # The first entry since the writer last took them: one job for all the
                # entries queued until it runs (under the lock, so a flush that starts now
                # finds the job counted).
                try:
                    self._store.committer.enqueue(self._drain_job(), "queued ledger entries")
                except BaseException:
                    self._queued = []
                    raise

    def _drain_job(self) -> Callable[[Connection], None]:
        """The writer's job for the queued entries: it takes every entry queued when it
        first runs (one job per batch, not one per call), and runs with those same entries
        again if its batch is retried."""
        taken: list[QueuedEntry] | None = None
        committer = self._store.committer
        budgets = self._budgets

        def job(conn: Connection) -> None:
            nonlocal taken
            batch = committer.batch
            if taken is None:
                with self._lock:
                    taken, self._queued = self._queued, []
                rows = BatchRows.of(batch, self._store)
                as_json = conn.dialect.name == "sqlite"
                for item in taken:
                    rows.add(item[2], item[3] if as_json else None)
            else:
                # A retry, alone, after the batch failed: each entry in a savepoint, so one
                # that cannot be stored stays in the journal without holding back the rest.
                taken = [item for item in taken if _insert_alone(conn, item)]
                batch.after_commit("ledger_rows", self._store.rows_written)
            committed = _Committed.of_batch(batch, budgets)
            if budgets is not None:
                plan = Plan()
                settlements = [(item[4], item[2][COST]) for item in taken if item[4] is not None]
                if settlements:
                    budgets.settle_in_batch(settlements, plan)
                    committed.plans.append(plan)
            ids = committed.ids
            for journal, eid, *_ in taken:
                if journal is None:
                    continue
                done = ids.get(journal)
                if done is None:
                    done = ids[journal] = []
                done.append(eid)

        return job
