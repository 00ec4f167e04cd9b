"""Agent steps that hold organisation-wide slots, for the slot and topology tests.

A *step* is a DBOS workflow (``tests.slot_step``) that asks for a slot as the engine's
agent steps do (:func:`orchestra.engine.slots.agent_slot`), then holds it until the test
creates the file ``<release>/<workflow id>`` (or for ``hold_s`` seconds), and gives it
back. The test process watches the slot table itself (:class:`Watcher`): no timing is
assumed, every wait polls with a generous timeout.

Steps run in this process (SQLite, ``InProcess``) or in worker processes
(``tests.engine.slot_worker``, PostgreSQL) that take orders from an inbox folder.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dbos import DBOS
from sqlalchemy import select, text

from orchestra.config.scheduling import SchedulingSettings
from orchestra.engine.draining import GATE
from orchestra.engine.slot_table import SlotTable
from orchestra.engine.slots import OrgSlots, agent_slot
from orchestra.scheduling import Placement
from orchestra.store import Database
from orchestra.store.tables.slots import SlotAllocationRow, SlotRequestRow

TIMEOUT_S = 300.0
"""How long a wait for the slot table to reach a state may take (a loaded machine)."""


@dataclass
class Bound:
    """What the step workflow of this process reaches for."""

    slots: OrgSlots | None = None
    table: SlotTable | None = None
    release: Path | None = None


BOUND = Bound()


@DBOS.workflow(name="tests.slot_step")
def slot_step(developer: str, hold_s: float) -> None:
    """Hold a slot for ``developer`` until released (or for ``hold_s`` seconds)."""
    assert BOUND.slots is not None and BOUND.table is not None and BOUND.release is not None
    with agent_slot(BOUND.table, BOUND.slots.placement(developer)) as holder:
        if hold_s > 0:
            time.sleep(hold_s)
        else:
            while not (BOUND.release / holder).exists() and not (BOUND.release / "all").exists():
                time.sleep(0.02)


def org_slots(spec: dict[str, Any], executor: str, shared: bool) -> OrgSlots:
    """The slots a spec describes: ``capacity``, ``per_developer``, ``topology``,
    ``people`` ({developer: [squad, tribe, region]}), ``units``, ``scheduling``."""
    people = {d: Placement(d, *where) for d, where in spec["people"].items()}
    return OrgSlots(
        capacity=spec["capacity"],
        per_developer=spec["per_developer"],
        developer="nobody",
        executor=executor,
        topology=spec["topology"],
        settings=SchedulingSettings(**spec.get("scheduling", {"tick_s": 0.5})),
        people=people,
        units=tuple(spec.get("units", ())),
        shared=shared,
    )


def bind(slots: OrgSlots, database: Database, release: Path) -> SlotTable:
    """Bind this process's steps to ``slots`` in ``database``."""
    BOUND.slots, BOUND.table, BOUND.release = slots, slots.table(database), release
    return BOUND.table


def launch_dbos(system_url: str, executor: str) -> None:
    """Launch DBOS for the steps."""
    DBOS(
        config={
            "name": "orchestra",
            "system_database_url": system_url,
            "executor_id": executor,
            "application_version": "slot-test",
            "log_level": "WARNING",
            "notification_listener_polling_interval_sec": 0.05,
        }
    )
    DBOS.launch()


@dataclass(frozen=True)
class Request:
    """A row of the slot table as the tests read it."""

    id: str
    developer: str
    squad: str
    tribe: str
    region: str
    state: str
    seq: int
    granted_at: float | None
    released_at: float | None


@dataclass
class Watcher:
    """The test's view of the slot table: waits for states, samples the agents granted."""

    database: Database
    capacity: int
    peak: int = 0
    samples: int = 0
    peaks: dict[tuple[str, str], int] = field(default_factory=dict)
    """The most granted at once seen per (level, unit)."""

    def rows(self) -> list[Request]:
        """Every request, in request order."""
        with self.database.session() as session:
            found = session.execute(select(SlotRequestRow).order_by(SlotRequestRow.seq)).scalars()
            return [
                Request(
                    r.id,
                    r.developer,
                    r.squad,
                    r.tribe,
                    r.region,
                    r.state,
                    r.seq,
                    r.granted_at.timestamp() if r.granted_at else None,
                    r.released_at.timestamp() if r.released_at else None,
                )
                for r in found
            ]

    def sample(self) -> list[Request]:
        """Read the table and record the agents granted now (in total and per unit)."""
        rows = self.rows()
        granted = [r for r in rows if r.state == "granted"]
        self.samples += 1
        self.peak = max(self.peak, len(granted))
        assert len(granted) <= self.capacity, f"{len(granted)} granted over cap {self.capacity}"
        for level in ("developer", "squad", "tribe", "region"):
            counts: dict[str, int] = {}
            for r in granted:
                unit = getattr(r, level)
                counts[unit] = counts.get(unit, 0) + 1
            for unit, n in counts.items():
                self.peaks[(level, unit)] = max(self.peaks.get((level, unit), 0), n)
        return rows

    def wait_for(self, what: str, done: Callable[[list[Request]], bool]) -> list[Request]:
        """Poll (sampling) until ``done(rows)``; fails after :data:`TIMEOUT_S`."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            rows = self.sample()
            if done(rows):
                return rows
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {rows}"
            time.sleep(0.1)

    def waiting(self, n: int, **where: str) -> list[Request]:
        """Wait until ``n`` requests matching ``where`` are waiting."""
        return self.wait_for(
            f"{n} waiting {where}",
            lambda rows: len([r for r in rows if r.state == "waiting" and _match(r, where)]) >= n,
        )

    def granted(self, n: int, **where: str) -> list[Request]:
        """Wait until ``n`` requests matching ``where`` are (or were) granted."""
        return self.wait_for(
            f"{n} granted {where}",
            lambda rows: len([r for r in rows if r.granted_at and _match(r, where)]) >= n,
        )

    def all_released(self, n: int) -> list[Request]:
        """Wait until ``n`` requests were released."""
        return self.wait_for(
            f"{n} released", lambda rows: len([r for r in rows if r.state == "released"]) >= n
        )

    @contextmanager
    def paused(self, table: SlotTable | None) -> Iterator[None]:
        """No slot is granted inside the block (the steps' requests pile up): in-process
        (SQLite) the table's lock, else a lock on the allocation row every dispatcher
        takes first (PostgreSQL)."""
        if table is not None:
            with table._lock:
                yield
            table.dispatch()
            return
        with self.database.session() as session:
            if session.get(SlotAllocationRow, "org") is None:
                session.execute(
                    text(
                        "insert into engine_slot_allocation values "
                        "('org', '', '', '{}', -1, now()) on conflict do nothing"
                    )
                )
        with self.database.engine.begin() as conn:
            conn.execute(text("select id from engine_slot_allocation for update"))
            yield


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at the same instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def _match(row: Request, where: dict[str, str]) -> bool:
    return all(getattr(row, k) == v for k, v in where.items())


def release(folder: Path, *ids: str) -> None:
    """Let the steps ``ids`` end (``all``: every step)."""
    for step in ids:
        (folder / step).write_text("go")


def order(
    folder: Path, worker: str, name: str, developer: str, ids: list[str], hold_s: float = 0.0
) -> None:
    """Tell worker process ``worker`` to start steps ``ids`` for ``developer``."""
    path = folder / f"{worker}--{name}.json"
    wanted = {"developer": developer, "ids": ids, "hold": hold_s}
    path.with_suffix(".tmp").write_text(json.dumps(wanted))
    path.with_suffix(".tmp").rename(path)


class InProcess:
    """Steps in this process (SQLite): DBOS launched here, started directly."""

    def __init__(self, slots: OrgSlots, database: Database, system_url: str, release: Path):
        """Launch DBOS and bind the steps."""
        self.table = bind(slots, database, release)
        GATE.reset()  # as a runtime launching does: an earlier test may have drained this process
        launch_dbos(system_url, slots.executor)
        self.handles: list[Any] = []
        self._lock = threading.Lock()

    def start(self, developer: str, ids: list[str], hold_s: float = 0.0) -> None:
        """Start steps ``ids`` for ``developer``."""
        from dbos import SetWorkflowID

        for step in ids:
            with SetWorkflowID(step):
                self.handles.append(DBOS.start_workflow(slot_step, developer, hold_s))

    def close(self) -> None:
        """Wait for the steps and stop DBOS (always); a step that failed fails the test.

        A step's ``SystemExit`` (a drained gate) is turned into an ``AssertionError``: a
        ``SystemExit`` escaping a fixture's teardown would leave pytest's fixtures broken
        for every later test in the process."""
        failures: list[str] = []
        try:
            for handle in self.handles:
                try:
                    handle.get_result(polling_interval_sec=0.05)
                except BaseException as exc:
                    failures.append(f"{handle.get_workflow_id()}: {exc!r}")
        finally:
            DBOS.destroy(destroy_registry=False, workflow_completion_timeout_sec=5)
            BOUND.slots = BOUND.table = BOUND.release = None
        assert not failures, f"steps failed: {failures}"


def record_history(database: Database, placement: Placement, agents: int, days: int) -> None:
    """``agents`` of ``placement``'s steps held slots around the clock for ``days``."""
    now = datetime.now(UTC)
    with database.session() as session:
        for hour in range(days * 24):
            start = now - timedelta(hours=hour + 1)
            for n in range(agents):
                session.add(
                    SlotRequestRow(
                        id=f"old-{placement.squad}-{hour}-{n}",
                        seq=0,
                        developer=placement.developer,
                        squad=placement.squad,
                        tribe=placement.tribe,
                        region=placement.region,
                        state="released",
                        worker="gone",
                        requested_at=start,
                        granted_at=start,
                        released_at=start + timedelta(hours=1),
                    )
                )
