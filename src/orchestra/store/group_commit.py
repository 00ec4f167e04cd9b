"""The group-commit writer: one writer thread per database, whose concurrent jobs share a
transaction.

Two things matter on the hot path:

* **Atomic writes across processes.** On SQLite every write transaction starts with
  ``BEGIN IMMEDIATE``, so it takes the database's write lock up front; a read-then-write
  transaction can therefore never fail half-way with a lock upgrade error, and a
  check-and-reserve is serialised with every other process on the same file. On PostgreSQL
  conditional ``UPDATE`` statements lock the rows they touch.
* **Group commit.** :class:`GroupCommitter` runs write jobs on one writer thread and commits
  every job that queued up while the previous transaction was committing in one
  transaction. A caller gets its result only after that commit, so durability is exactly
  that of one transaction per call, at a fraction of the cost when calls are concurrent.
  Work already durable elsewhere (a journaled ledger entry) is handed over with
  :meth:`GroupCommitter.enqueue`: no future, no wake-up of the writer per job; it rides
  along with the next transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event

from orchestra.errors import OrchestraError
from orchestra.store.database import Database, make_engine

T = TypeVar("T")
log = logging.getLogger("orchestra.store")


def write_engine(db: Database, *, wait_for_lock: bool = True) -> Engine:
    """The engine write transactions use: ``db``'s own on PostgreSQL; on SQLite a separate
    one whose transactions begin with ``BEGIN IMMEDIATE`` (``wait_for_lock=False``: never
    wait for another writer's lock, for transactions run inline on an event loop)."""
    if db.engine.dialect.name != "sqlite":
        return db.engine
    engine = make_engine(db.engine.url.render_as_string(hide_password=False))

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite otherwise opens deferred transactions itself; we emit BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        if not wait_for_lock:
            # Inline transactions run on the caller's thread (the event loop): never wait
            # there for a lock, and leave WAL checkpoints (an fsync) to the writer thread's
            # connection, whose commits keep checkpointing as usual.
            dbapi_conn.execute("PRAGMA busy_timeout=0")
            dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Batch:
    """Work that the jobs of one write batch defer to its end, done once for all of them
    just before the commit (e.g. one multi-row ``INSERT`` instead of one per job), and
    work to do once the batch has committed (e.g. one journal line marking its entries).

    Only valid on the writer thread while the batch runs (:attr:`GroupCommitter.batch`).
    """

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        """Per-batch collections, by the key of the deferring component."""
        self._finals: dict[str, Callable[[Connection], None]] = {}
        self._committed: dict[str, Callable[[], None]] = {}

    def at_end(self, key: str, final: Callable[[Connection], None]) -> None:
        """Run ``final(conn)`` once at the end of the batch (first registration wins)."""
        self._finals.setdefault(key, final)

    def after_commit(self, key: str, then: Callable[[], None]) -> None:
        """Run ``then()`` once after the batch has committed (first registration wins);
        never run when the batch rolls back (its jobs are then retried in new batches)."""
        self._committed.setdefault(key, then)

    def finish(self, conn: Connection) -> None:
        for final in self._finals.values():
            final(conn)

    def committed(self) -> None:
        """Run the after-commit work; a failure there is logged, never undoes the commit."""
        for key, then in self._committed.items():
            try:
                then()
            except Exception:
                log.exception("after-commit work %r failed", key)


@dataclass(slots=True)
class _Job:
    fn: Callable[[Connection], Any]
    future: Future[Any] | None = None
    """Where a blocking caller waits (``None`` for an async caller)."""
    afuture: asyncio.Future[Any] | None = None
    """Where an async caller waits, on its own event loop."""
    loop: asyncio.AbstractEventLoop | None = None
    deferred: bool = False
    """May wait for the next batch (see :meth:`GroupCommitter.arun` ``deferred``)."""
    what: str = ""
    """For a job nobody waits for (:meth:`GroupCommitter.enqueue`): named if it fails."""

    @property
    def waited_for(self) -> bool:
        """Whether a caller waits for the outcome (not an :meth:`GroupCommitter.enqueue` job)."""
        return self.future is not None or self.afuture is not None


def _deliver_async(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """On the event loop: hand each async caller of a batch its result."""
    for future, ok, value in outcomes:
        if future.done():  # the caller was cancelled meanwhile
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


_STOP = object()
_WAKE = object()
"""Tells the writer that parked jobs (:meth:`GroupCommitter.enqueue`) are waiting."""


class GroupCommitter:
    """One writer thread; concurrent jobs share a transaction; results after commit.

    A job that raises an :class:`OrchestraError` (a domain refusal such as a budget
    exceeded) must leave the transaction as it found it; its error goes to its caller and
    the batch goes on. Any other exception rolls the batch back and each of its jobs is
    retried alone, so one bad job cannot fail its neighbours.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 512,
        defer_s: float = 0.05,
        inline_engine: Engine | None = None,
        name: str = "accounting",
    ) -> None:
        self._engine = engine
        self._inline_engine = inline_engine
        self._inline_conn: Connection | None = None
        self._writing = threading.Lock()
        """Held while this process writes (a batch, or an inline job)."""
        self._local = threading.local()
        self._max_batch = max_batch
        self._defer_s = defer_s
        self._deferred: list[_Job] = []
        self._deferred_since = 0.0
        self._conn: Connection | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._parked: list[_Job] = []
        """Fire-and-forget jobs not yet seen by the writer (see :meth:`enqueue`)."""
        self._parked_waiting = False
        """The writer was woken for parked jobs and has not taken them yet."""
        self._park_lock = threading.Lock()
        self._unsettled = 0
        """Fire-and-forget jobs queued and not yet through a batch (committed or failed)."""
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[Connection], T]) -> Future[T]:
        """Queue ``fn``; the future resolves once its transaction has committed."""
        if self._closed:
            raise RuntimeError("the accounting writer is closed")
        future: Future[T] = Future()
        self._queue.put(_Job(fn, future))
        return future

    def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a (shared) write transaction and wait for its commit."""
        return self.submit(fn).result()

    async def arun(self, fn: Callable[[Connection], T], *, deferred: bool = False) -> T:
        """Like :meth:`run`, without blocking the event loop.

        A ``deferred`` job is for work already durable elsewhere (a ledger entry in the
        journal): it rides along with the next batch that commits anyway (a reservation),
        or is committed after at most ``defer_s`` with whatever else was deferred. One
        transaction per call is what made a reservation queue behind the previous call's
        ledger commit at low concurrency; this way the common case is one transaction
        per reservation, with the previous calls' entries in it.

        The caller waits on a plain asyncio future, and the writer wakes each event loop
        once per batch (one ``call_soon_threadsafe`` for all of that loop's jobs): wrapping
        a ``concurrent.futures.Future`` per call cost a lock, a condition and two thread
        hops per job, a sixth of the request path's CPU in profiles under load.
        """
        if self._closed:
            raise RuntimeError("the accounting writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, None, future, loop, deferred))
        return await future

    def enqueue(self, fn: Callable[[Connection], Any], what: str = "") -> None:
        """Queue ``fn`` and return at once; nobody waits for its commit.

        For work already durable elsewhere (a journaled ledger entry): like a ``deferred``
        :meth:`arun` job it rides along with the next batch, or is committed after at most
        ``defer_s``. The job is parked on a list, and the writer is woken only by the
        first job parked since it last looked (the later ones wait for that wake-up), so a
        burst of calls costs one thread wake-up, not one each. ``fn`` learns of its commit
        through :meth:`Batch.after_commit`; a failure is logged with ``what`` (the journal
        keeps the work, and the next start reconciles it).
        """
        if self._closed:
            raise RuntimeError("the accounting writer is closed")
        job = _Job(fn, deferred=True, what=what)
        with self._park_lock:
            first = not self._parked
            self._parked.append(job)
            self._unsettled += 1
        if first:
            self._queue.put(_WAKE)

    @property
    def pending(self) -> bool:
        """Whether fire-and-forget jobs (:meth:`enqueue`) are queued and not yet through a
        batch: a job submitted now runs after them, in the same batch or a later one."""
        return self._unsettled > 0

    def flush(self, timeout: float | None = 60) -> None:
        """Return once every fire-and-forget job queued so far (:meth:`enqueue`) has been
        through a batch; at once when there is none (a read path calls this: no empty write
        transaction then). Raises ``TimeoutError`` after ``timeout`` seconds (a writer that
        stopped)."""
        if self._closed or threading.current_thread() is self._thread or not self._unsettled:
            return
        # A batch now, behind every job queued before it.
        self.submit(lambda _conn: None).result(timeout=timeout)

    def _unpark(self) -> None:
        """Take the parked jobs into this batch (on the writer thread, just before it runs)."""
        with self._park_lock:
            parked, self._parked = self._parked, []
            # Jobs parked from now on find an empty list and wake the writer again.
            self._parked_waiting = False
        self._deferred.extend(parked)

    def _waiting_since(self) -> float | None:
        """When the oldest deferred or parked job arrived (``None``: nothing waits)."""
        if self._deferred or self._parked_waiting:
            return self._deferred_since
        return None

    def close(self) -> None:
        """Finish queued jobs and stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        with self._writing:
            conn, self._inline_conn = self._inline_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                since = self._waiting_since()
                if since is not None:
                    wait = since + self._defer_s - time.monotonic()
                    first = self._queue.get(timeout=max(wait, 0.0))
                else:
                    first = self._queue.get()
            except queue.Empty:
                self._unpark()
                if self._deferred:
                    self._commit_deferred_with([])  # deferred work waited long enough
                continue
            if first is _STOP:
                break
            batch: list[_Job] = []
            item: Any = first
            while True:
                if item is _WAKE or item.deferred:
                    # Parked jobs stay parked (later ones join them without waking the
                    # writer) until this deferred work has waited long enough.
                    if self._waiting_since() is None:
                        self._deferred_since = time.monotonic()
                    if item is _WAKE:
                        with self._park_lock:
                            self._parked_waiting = bool(self._parked)
                    else:
                        self._deferred.append(item)
                else:
                    batch.append(item)
                if len(batch) + len(self._deferred) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
            if batch or len(self._deferred) >= self._max_batch:
                self._unpark()
                self._commit_deferred_with(batch)
        self._unpark()
        if self._deferred:
            self._commit_deferred_with([])
        self._drop_connection()

    def _connection(self) -> Connection:
        # One connection for the writer's lifetime: checking one out of the pool and
        # resetting it on return cost more than the reservation's own statements.
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _commit_deferred_with(self, batch: list[_Job]) -> None:
        # Deferred jobs go first: a settlement frees its reservation before the new
        # reservations of the same batch are checked against the cap.
        jobs, self._deferred = [*self._deferred, *batch], []
        self._commit(jobs)

    @property
    def batch(self) -> Batch:
        """The batch being run (call only from a job, i.e. while it runs)."""
        batch: Batch | None = getattr(self._local, "batch", None)
        if batch is None:
            raise RuntimeError("no accounting batch is running on this thread")
        return batch

    def try_inline(self, fn: Callable[[Connection], T]) -> tuple[str, T | None]:
        """Run ``fn`` in its own transaction on the calling thread, at once, if nothing
        else is writing: ``("done", result)``; ``("busy", None)`` when this process's
        writer is busy or another process holds the database's write lock, and
        ``("rolled_back", None)`` when ``fn`` started but the transaction failed (then
        submit it, after dropping anything cached from the rolled-back transaction).

        Only with an inline engine (SQLite, where a short transaction costs less than the
        two thread hand-offs of the writer); the transaction never waits for a lock
        (``busy_timeout=0``), so the caller is blocked only for its own statements. Domain
        refusals (:class:`OrchestraError`) propagate; any other failure rolls back and
        reports "not run", so the writer thread does the job instead.
        """
        if self._inline_engine is None or self._closed or not self._queue.empty():
            return "busy", None
        if not self._writing.acquire(blocking=False):
            return "busy", None
        started = False
        try:
            try:
                if self._inline_conn is None:
                    self._inline_conn = self._inline_engine.connect()
                conn = self._inline_conn
                batch = Batch()
                with conn.begin():  # BEGIN IMMEDIATE: fails at once if another process writes
                    self._local.batch = batch
                    try:
                        started = True
                        result = fn(conn)
                        batch.finish(conn)
                    finally:
                        self._local.batch = None
            except OrchestraError:
                raise
            except Exception:
                conn_, self._inline_conn = self._inline_conn, None
                if conn_ is not None:
                    with contextlib.suppress(Exception):
                        conn_.close()
                return ("rolled_back" if started else "busy"), None
        finally:
            self._writing.release()
        batch.committed()
        return "done", result

    def _commit(self, batch: list[_Job], *, alone: bool = False) -> None:
        """Run ``batch`` in one transaction; if it fails, each job again in its own
        (``alone``), so one failing job does not fail the others. A lone job is delivered
        its failure at once, unless nobody waits for it (:meth:`enqueue`): that one gets
        its own retry too (a reconnect after a restarted server; a job that queues many
        entries can store the good ones then)."""
        outcomes: list[tuple[bool, Any]] = []
        work = Batch()
        try:
            with self._writing:
                conn = self._connection()
                with conn.begin():
                    self._local.batch = work
                    try:
                        for job in batch:
                            try:
                                outcomes.append((True, job.fn(conn)))
                            except OrchestraError as exc:
                                outcomes.append((False, exc))
                        work.finish(conn)
                    finally:
                        self._local.batch = None
        except Exception as exc:
            # The connection may be what failed (a restarted server): start afresh.
            self._drop_connection()
            if alone or (len(batch) == 1 and batch[0].waited_for):
                self._deliver(batch, [(False, exc)])
                return
            log.warning("accounting batch of %d failed; retrying its jobs one by one", len(batch))
            for job in batch:
                self._commit([job], alone=True)
            return
        work.committed()
        self._deliver(batch, outcomes)

    def _deliver(self, batch: list[_Job], outcomes: list[tuple[bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            if job.future is not None:
                if job.future.cancelled():
                    continue
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)
            elif job.afuture is not None and job.loop is not None:
                by_loop.setdefault(job.loop, []).append((job.afuture, ok, value))
            else:
                with self._park_lock:
                    self._unsettled -= 1
                if not ok:
                    # Nobody waits for it: say so here (the journal keeps the work).
                    log.error(
                        "queued accounting work %s failed: %r", job.what or "(unnamed)", value
                    )
        for loop, ready in by_loop.items():
            # A closed loop (RuntimeError) has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver_async, ready)
