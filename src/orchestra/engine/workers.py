"""Engine workers on a shared PostgreSQL database: unique executor ids, leases, reaping.

Every engine process on PostgreSQL is a *worker* with a row in ``engine_workers``:

- **A unique executor id.** :meth:`WorkerRegistry.acquire` takes the row at start; while
  another worker with the same id holds a live lease (a heartbeat younger than
  ``engine.workers.timeout_s``) the start is refused with :class:`WorkerConflict`.
- **One set of scheduling settings.** Every worker grants agent slots from one table; the
  start of a worker whose settings (the cap, topology, quotas, organisation) differ from
  a live worker's is refused with :class:`SchedulingConflict`.
- **A lease.** :class:`WorkerLease` renews the row's ``heartbeat_at`` every
  ``heartbeat_s`` (the database's clock, so hosts' clocks do not matter). A worker that
  finds its lease taken (it was thought dead) stops taking work.
- **A reaper** in every worker: the same thread claims workers whose heartbeat stopped
  (or that drained on ``SIGTERM``) with one conditional ``UPDATE``, so exactly one reaper
  wins each, and hands them to :func:`orchestra.engine.recovery.recover_executor`.

On SQLite the DBOS system database belongs to one process: there are no workers to
count, and none of this runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from orchestra.errors import EngineError
from orchestra.store import Database
from orchestra.store.tables.engine import WorkerRow

log = logging.getLogger("orchestra.engine")

LIVE_STATES = ("running", "draining")
"""States of a worker holding its lease."""

GONE_STATES = ("stopped", "recovered")
"""States of a worker that left, cleanly or recovered by a reaper: nothing should be left
on it, and whatever is (a straggler) is swept by a reaper (:meth:`WorkerRegistry.gone`)."""


ACQUIRE_LOCK = 0x6F7263_776B72
"""The advisory lock serialising workers' starts, so two starting at once with different
scheduling settings cannot both find no live worker to disagree with."""


class WorkerConflict(EngineError):
    """Another live worker holds this executor id."""


class SchedulingConflict(WorkerConflict):
    """A live worker grants agent slots under other scheduling settings than this one."""


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as ``orchestra workers`` shows it."""

    executor_id: str
    host: str
    pid: int
    state: str
    heartbeat_age_s: float
    """Seconds since its last heartbeat (the database's clock)."""
    recovered_by: str | None
    recovered_workflows: int


@dataclass
class WorkerRegistry:
    """The ``engine_workers`` table: leases, states and claims of dead workers."""

    database: Database
    timeout_s: float
    """A lease older than this has expired (its worker is dead)."""

    def _expired(self) -> ColumnElement[bool]:
        return WorkerRow.heartbeat_at < func.now() - timedelta(seconds=self.timeout_s)

    def _reapable(self) -> ColumnElement[bool]:
        # Dead (lease expired), drained (left its work on SIGTERM), or a claim whose
        # reaper died before finishing (its claim is as old as a lease).
        return or_(
            and_(WorkerRow.state.in_(LIVE_STATES), self._expired()),
            WorkerRow.state == "drained",
            and_(
                WorkerRow.state == "recovering",
                WorkerRow.recovered_at < func.now() - timedelta(seconds=self.timeout_s),
            ),
        )

    def _live(self) -> ColumnElement[bool]:
        return and_(WorkerRow.state.in_(LIVE_STATES), ~self._expired())

    def acquire(
        self,
        executor_id: str,
        host: str,
        pid: int,
        scheduling: Mapping[str, Any] | None = None,
    ) -> None:
        """Take ``executor_id`` for this process, or refuse: a live worker holds it, its
        earlier worker's work has not been recovered yet, or a live worker grants agent
        slots under other ``scheduling`` settings
        (:meth:`~orchestra.engine.slot_table.SlotPolicy.shared_settings`; ``None``: this
        worker takes no slots, nothing to agree on)."""
        fresh = {
            "host": host,
            "pid": pid,
            "state": "running",
            "started_at": func.now(),
            "heartbeat_at": func.now(),
            "stopped_at": None,
            "recovered_by": None,
            "recovered_at": None,
            "recovered_workflows": 0,
            "scheduling": None if scheduling is None else json.dumps(scheduling, sort_keys=True),
        }
        with self.database.engine.begin() as conn:
            conn.execute(select(func.pg_advisory_xact_lock(ACQUIRE_LOCK)))
            if scheduling is not None:
                self._agree(conn, executor_id, scheduling)
            inserted = conn.execute(
                insert(WorkerRow)
                .values(executor_id=executor_id, **fresh)
                .on_conflict_do_nothing(index_elements=["executor_id"])
                .returning(WorkerRow.executor_id)
            )
            if inserted.first() is not None:
                return
            taken = conn.execute(
                update(WorkerRow)
                .where(WorkerRow.executor_id == executor_id)
                .where(WorkerRow.state.in_(("stopped", "recovered")))
                .values(**fresh)
            )
            if taken.rowcount == 1:
                return
        raise self._conflict(executor_id)

    def _agree(self, conn: Connection, executor_id: str, scheduling: Mapping[str, Any]) -> None:
        """Refuse the start if a live worker grants under other scheduling settings."""
        live = conn.execute(
            select(WorkerRow.executor_id, WorkerRow.host, WorkerRow.pid, WorkerRow.scheduling)
            .where(self._live())
            .where(WorkerRow.executor_id != executor_id)
            .where(WorkerRow.scheduling.is_not(None))
            .order_by(WorkerRow.started_at)
        ).all()
        for other, host, pid, theirs in live:
            differences = scheduling_differences(scheduling, json.loads(theirs or "{}"))
            if differences:
                raise SchedulingConflict(
                    f"this worker's scheduling settings differ from those of live worker "
                    f"{other!r} (pid {pid} on {host}): {'; '.join(differences)}",
                    hint="every worker sharing the database must grant agent slots under the "
                    "same organisation and engine.scheduling; to change them, drain the "
                    "running workers (SIGTERM; `orchestra workers` lists them) and start "
                    "them all with the new configuration",
                )

    def _conflict(self, executor_id: str) -> WorkerConflict:
        held = next(w for w in self.list() if w.executor_id == executor_id)
        where = f"pid {held.pid} on {held.host}"
        if held.state in LIVE_STATES and held.heartbeat_age_s < self.timeout_s:
            return WorkerConflict(
                f"executor id {executor_id!r} is held by a live worker ({where}, "
                f"{held.state}, heartbeat {held.heartbeat_age_s:.1f}s ago)",
                hint="give this worker another id (engine.workers.executor_id or "
                "$ORCHESTRA_EXECUTOR_ID; unset, each process gets a new one), or stop that "
                "worker first",
            )
        return WorkerConflict(
            f"executor id {executor_id!r} belonged to a worker ({where}) whose work has not "
            f"been recovered yet ({held.state})",
            hint="a running worker's reaper recovers it within engine.workers.timeout_s; "
            "start this worker with another id (unset, each process gets a new one)",
        )

    def heartbeat(self, executor_id: str) -> bool:
        """Renew the lease; ``False`` when this worker no longer holds it."""
        with self.database.engine.begin() as conn:
            renewed = conn.execute(
                update(WorkerRow)
                .where(WorkerRow.executor_id == executor_id)
                .where(WorkerRow.state.in_(LIVE_STATES))
                .values(heartbeat_at=func.now())
            )
        return bool(renewed.rowcount == 1)

    def set_state(self, executor_id: str, state: str) -> None:
        """Record ``state`` (``draining``, ``drained``, ``stopped``) for a worker this
        process holds (a claimed or recovered row is left alone)."""
        values: dict[str, Any] = {"state": state}
        if state in ("drained", "stopped"):
            values["stopped_at"] = func.now()
        with self.database.engine.begin() as conn:
            conn.execute(
                update(WorkerRow)
                .where(WorkerRow.executor_id == executor_id)
                .where(WorkerRow.state.in_(LIVE_STATES))
                .values(**values)
            )

    def claim_dead(self, reaper: str) -> list[str]:
        """Claim every worker that died or drained (one conditional ``UPDATE`` each, so
        one reaper wins each); returns the executor ids this reaper won."""
        with self.database.engine.begin() as conn:
            candidates = list(
                conn.execute(
                    select(WorkerRow.executor_id)
                    .where(self._reapable())
                    .where(WorkerRow.executor_id != reaper)
                ).scalars()
            )
        won = []
        for executor_id in candidates:
            with self.database.engine.begin() as conn:
                claimed = conn.execute(
                    update(WorkerRow)
                    .where(WorkerRow.executor_id == executor_id)
                    .where(self._reapable())
                    .values(state="recovering", recovered_by=reaper, recovered_at=func.now())
                )
            if claimed.rowcount == 1:
                won.append(executor_id)
        return won

    def gone(self) -> list[str]:
        """Executor ids of the workers that left (stopped, or recovered)."""
        with self.database.engine.begin() as conn:
            return list(
                conn.execute(
                    select(WorkerRow.executor_id).where(WorkerRow.state.in_(GONE_STATES))
                ).scalars()
            )

    def claim_gone(self, executor_id: str, reaper: str) -> bool:
        """Claim a worker that left, to sweep what was left on it: one conditional
        ``UPDATE`` (one reaper wins; a worker started again with its id is left alone)."""
        with self.database.engine.begin() as conn:
            claimed = conn.execute(
                update(WorkerRow)
                .where(WorkerRow.executor_id == executor_id)
                .where(WorkerRow.state.in_(GONE_STATES))
                .values(state="recovering", recovered_by=reaper, recovered_at=func.now())
            )
        return bool(claimed.rowcount == 1)

    def hold_claim(self, executor_id: str, reaper: str) -> bool:
        """Renew ``reaper``'s claim on ``executor_id`` (a recovery still under way);
        ``False`` when the claim was lost. A claim is as long as a lease: one older than
        that is taken as its reaper's death, and another reaper takes the worker over."""
        with self.database.engine.begin() as conn:
            renewed = conn.execute(
                update(WorkerRow)
                .where(WorkerRow.executor_id == executor_id)
                .where(WorkerRow.recovered_by == reaper)
                .where(WorkerRow.state == "recovering")
                .values(recovered_at=func.now())
            )
        return bool(renewed.rowcount == 1)

    def finish_recovery(self, executor_id: str, reaper: str, workflows: int) -> None:
        """Record that ``reaper`` recovered ``workflows`` more workflows of ``executor_id``."""
        with self.database.engine.begin() as conn:
            conn.execute(
                update(WorkerRow)
                .where(WorkerRow.executor_id == executor_id)
                .where(WorkerRow.recovered_by == reaper)
                .values(
                    state="recovered",
                    recovered_workflows=WorkerRow.recovered_workflows + workflows,
                    recovered_at=func.now(),
                )
            )

    def list(self) -> list[WorkerInfo]:
        """Every worker recorded, newest first."""
        age = func.extract("epoch", func.now() - WorkerRow.heartbeat_at)
        with self.database.session() as session:
            rows = session.execute(
                select(WorkerRow, age.label("age")).order_by(WorkerRow.started_at.desc())
            ).all()
            return [
                WorkerInfo(
                    executor_id=worker.executor_id,
                    host=worker.host,
                    pid=worker.pid,
                    state=worker.state,
                    heartbeat_age_s=float(seconds),
                    recovered_by=worker.recovered_by,
                    recovered_workflows=worker.recovered_workflows,
                )
                for worker, seconds in rows
            ]


def scheduling_differences(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """How two workers' scheduling settings differ, one line per setting (none: they agree)."""
    lines = []
    for key in sorted(set(mine) | set(theirs)):
        here, there = mine.get(key), theirs.get(key)
        if here == there:
            continue
        if key == "people" and isinstance(here, dict) and isinstance(there, dict):
            names = sorted(n for n in set(here) | set(there) if here.get(n) != there.get(n))
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            lines.append(f"the organisation places {len(names)} developer(s) otherwise: {shown}")
        else:
            lines.append(f"{key} {here!r} here, {there!r} there")
    return lines


Stranded = Callable[[list[str]], list[str]]
"""Of the executor ids of workers that left, those with workflows still on them."""

Recover = Callable[[str, Callable[[], bool]], int]
"""Recovers a dead executor's workflows in this process; returns how many it moved. Its
second argument renews this worker's lease and says whether it still holds it: called
before each workflow it moves (a long recovery must not let the lease lapse, and a
worker that lost its lease must stop moving work)."""


@dataclass
class WorkerLease:
    """The heartbeat and the reaper of one worker, on a background thread."""

    registry: WorkerRegistry
    executor_id: str
    interval_s: float
    recover: Recover | None = None
    """Called for each dead worker this one claims (``None``: no reaping yet; set once
    the engine is up, see :meth:`reap_with`)."""
    on_lost: Callable[[], None] | None = None
    """Called once if the lease is found taken (this worker was presumed dead)."""
    stranded: Stranded | None = None
    """Finds workflows stranded on workers that left (``None``: no sweep)."""
    sweep_s: float = 60.0
    """How often the sweep looks for them."""
    _next_sweep: float = 0.0
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start heartbeating (and reaping) every ``interval_s``."""
        self._thread = threading.Thread(
            target=self._loop, name=f"orchestra-lease-{self.executor_id}", daemon=True
        )
        self._thread.start()

    def reap_with(self, recover: Recover, stranded: Stranded | None = None) -> None:
        """Start reaping (the engine is up): ``recover`` each dead worker claimed, and
        every :attr:`sweep_s` each worker that left with workflows still on it
        (``stranded``)."""
        self.stranded = stranded
        self._next_sweep = time.monotonic() + self.sweep_s
        self.recover = recover

    def stop(self) -> None:
        """Stop the thread (the lease then expires unless the state says otherwise)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # a database hiccup: try again at the next beat
                log.exception("worker %s: heartbeat or reaping failed", self.executor_id)

    def renew(self) -> bool:
        """Renew the lease; ``False`` (and the worker stops taking work) once it is lost."""
        if not self.lost.is_set() and self.registry.heartbeat(self.executor_id):
            return True
        if not self.lost.is_set():
            self.lost.set()
            log.error(
                "worker %s lost its lease (presumed dead by another worker): it takes no more work",
                self.executor_id,
            )
            if self.on_lost is not None:
                self.on_lost()
        return False

    def tick(self) -> None:
        """One beat: renew the lease, then recover the workers this one claims."""
        if not self.renew():
            return
        recover = self.recover
        if recover is None:
            return
        for dead in self.registry.claim_dead(self.executor_id):
            if self._stop.is_set() or not self._recover(dead, recover, "of dead"):
                return
        if self.stranded is not None and time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.sweep_s
            self.sweep(recover, self.stranded)

    def sweep(self, recover: Recover, stranded: Stranded) -> None:
        """Move the workflows stranded on workers that already left (a straggler moved
        onto a worker's queue after its recovery): each such worker is claimed again by
        one reaper, which moves what is on it now, so each workflow moves once."""
        for gone in stranded(self.registry.gone()):
            if self._stop.is_set():
                return
            if self.registry.claim_gone(gone, self.executor_id) and not self._recover(
                gone, recover, "left on gone"
            ):
                return

    def _recover(self, executor_id: str, recover: Recover, what: str) -> bool:
        """Move ``executor_id``'s work here (claimed); ``False`` if the lease was lost."""
        claim = _Claim(self, executor_id)
        moved = recover(executor_id, claim.held)
        if self.lost.is_set():
            return False  # the claim expires; a live reaper takes it (and this worker) over
        if claim.lost:
            log.error(
                "worker %s lost its claim on worker %s part-way through its recovery "
                "(%d workflow(s) moved); another reaper recovers the rest",
                self.executor_id,
                executor_id,
                moved,
            )
            return True
        self.registry.finish_recovery(executor_id, self.executor_id, moved)
        log.warning(
            "worker %s recovered %d workflow(s) %s worker %s",
            self.executor_id,
            moved,
            what,
            executor_id,
        )
        return True


@dataclass
class _Claim:
    """A reaper's claim on one worker while it recovers it: :meth:`held` renews the
    reaper's lease and the claim (at most once per heartbeat interval), so a recovery
    longer than a lease is not taken for a dead reaper's and done twice."""

    lease: WorkerLease
    executor_id: str
    lost: bool = False
    _renewed: float = field(default_factory=time.monotonic)

    def held(self) -> bool:
        """Whether this reaper still holds its lease and the claim."""
        if self.lost or self.lease.lost.is_set():
            return False
        if time.monotonic() - self._renewed < self.lease.interval_s:
            return True
        self._renewed = time.monotonic()
        if not self.lease.renew():
            return False
        if not self.lease.registry.hold_claim(self.executor_id, self.lease.executor_id):
            self.lost = True
        return not self.lost
