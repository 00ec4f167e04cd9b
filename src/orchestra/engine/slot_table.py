"""The slot-request table and its dispatcher: which agent step gets the next of the
organisation's agent slots, decided by the topology's policy.

Every agent step that wants a slot has a row in ``engine_slot_requests`` (its id is the
step's workflow id, so a replayed or recovered step finds its own row). Any worker grants
(:meth:`SlotTable.dispatch`): the one that requests, the one that releases, and every
worker with steps waiting, every ``tick_s``. A dispatch locks the allocation row
(``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the database belongs to one process and
a lock in it serialises), reads the waiting and granted rows, asks
:func:`orchestra.scheduling.next_demand` for the next grant until it says none, and marks
those rows granted. There is no leader: whoever dispatches sees the same rows and quotas.

A slot whose step ended without releasing it (a cancelled step, or a workflow that failed
on a worker that died before releasing) is reclaimed by :meth:`SlotTable.reclaim`: its row
is released once DBOS says the workflow ended. A step continued by another worker keeps its
grant (the workflow is still pending), so it is never counted twice.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestra.config import SchedulingSettings
from orchestra.scheduling import (
    QUOTA_LEVEL,
    Allocation,
    Demand,
    Limits,
    Placement,
    Quotas,
    Running,
    forecast_slots,
    grant_all,
    headcounts,
    hourly_seconds,
    topology_quotas,
    tribes_by_region,
)
from orchestra.store import Database
from orchestra.store.tables.slots import SlotAllocationRow, SlotRequestRow

ACTIVE = ("waiting", "granted")
"""States of a request that counts: waiting for a slot, or holding one."""
ALLOCATION_ID = "org"
HOUR = 3600.0

Statuses = Callable[[list[str]], Mapping[str, str]]
"""Workflow ids -> their DBOS status (ids DBOS does not know are left out)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _epoch(at: datetime) -> float:
    # SQLite hands timezone-aware columns back naive (in UTC).
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True)
class SlotPolicy:
    """What the dispatcher grants under: limits, topology, allocation and the org."""

    capacity: int
    per_developer: int
    topology: str
    settings: SchedulingSettings
    people: Mapping[str, Placement]
    """Every configured developer's placement (headcounts, units)."""
    units: Sequence[str] = ()
    """The units of the topology's level the quotas are given to."""

    @property
    def limits(self) -> Limits:
        """The cap and the per-developer limit."""
        return Limits(self.capacity, min(self.per_developer, self.capacity))

    @property
    def level(self) -> Any:
        """The level the topology's quotas apply to (``None``: no quotas)."""
        return QUOTA_LEVEL[self.topology]

    def weights(self) -> dict[str, float]:
        """Static weights per unit: configured, else headcount."""
        level = self.level
        if self.settings.weights:
            return {u: float(self.settings.weights.get(u, 0.0)) for u in self.units}
        counts = headcounts(self.people.values(), level)
        return {u: float(counts.get(u, 0)) for u in self.units}

    def shared_settings(self) -> dict[str, Any]:
        """What every worker granting from one slot table must agree on, as JSON values:
        workers granting under different caps, topologies, quotas or organisations would
        each hold the table to their own (``poll_s`` and ``tick_s``, each worker's own
        cadence, may differ)."""
        settings = self.settings
        return {
            "capacity": self.capacity,
            "per_developer": self.per_developer,
            "topology": self.topology,
            "allocation": settings.allocation,
            "interval_s": settings.interval_s,
            "weights": dict(sorted(settings.weights.items())),
            "history_days": settings.history_days,
            "units": sorted(self.units),
            "people": {
                name: [p.squad, p.tribe, p.region] for name, p in sorted(self.people.items())
            },
        }


@dataclass(frozen=True)
class UnitLoad:
    """Waiting and granted requests of one unit, and its quota (``orchestra slots``)."""

    level: str
    unit: str
    waiting: int
    granted: int
    quota: int | None


@dataclass
class SlotTable:
    """Requests, grants and releases of agent slots in Orchestra's database."""

    database: Database
    policy: SlotPolicy
    worker: str
    """This worker's executor id."""
    shared: bool
    """PostgreSQL: every worker's requests count. SQLite: only this process's."""
    statuses: Statuses
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _ready: bool = field(default=False, init=False)
    _last_tick: float = field(default=-math.inf, init=False)

    # -- one step's request ---------------------------------------------------------
    def request(self, slot_id: str, placement: Placement) -> str:
        """Ask for a slot for ``slot_id`` (or find its earlier request); returns its
        state. A replayed step that had released its slot asks again."""
        with self.database.session() as session:
            row = session.get(SlotRequestRow, slot_id)
            if row is not None and row.state in ACTIVE:
                row.worker = self.worker  # continued here after a recovery
                return row.state
            seq = session.execute(select(func.coalesce(func.max(SlotRequestRow.seq), 0))).scalar()
            values = {
                "seq": int(seq or 0) + 1,
                "developer": placement.developer,
                "squad": placement.squad,
                "tribe": placement.tribe,
                "region": placement.region,
                "state": "waiting",
                "worker": self.worker,
                "requested_at": _now(),
                "granted_at": None,
                "released_at": None,
            }
            if row is None:
                session.add(SlotRequestRow(id=slot_id, **values))
            else:
                for key, value in values.items():
                    setattr(row, key, value)
        return "waiting"

    def state(self, slot_id: str) -> str | None:
        """The request's state (``None``: no such request)."""
        with self.database.session() as session:
            row = session.get(SlotRequestRow, slot_id)
            return None if row is None else row.state

    def release(self, slot_id: str) -> None:
        """Give ``slot_id``'s slot back (or stop waiting for one)."""
        with self.database.session() as session:
            session.execute(
                update(SlotRequestRow)
                .where(SlotRequestRow.id == slot_id)
                .where(SlotRequestRow.state.in_(ACTIVE))
                .values(state="released", released_at=_now())
            )

    def wait(self, timeout_s: float) -> None:
        """Sleep up to ``timeout_s``, woken early when this process grants slots."""
        with self._cond:
            self._cond.wait(timeout_s)

    # -- granting ---------------------------------------------------------------------
    def dispatch(self) -> list[str]:
        """Grant every slot the policy gives now; returns the ids granted."""
        self._ensure_allocation_row()
        with self._lock, self.database.session() as session:
            allocation = session.execute(
                select(SlotAllocationRow)
                .where(SlotAllocationRow.id == ALLOCATION_ID)
                .with_for_update()
            ).scalar_one()
            rows = self._active(session)
            waiting = [r for r in rows if r.state == "waiting"]
            if not waiting:
                return []
            running = Running()
            for row in rows:
                if row.state == "granted":
                    running.start(_placement(row))
            quotas = self._quotas(session, allocation, rows)
            queue = [Demand(r.id, _placement(r), float(r.seq)) for r in waiting]
            granted = grant_all(self.policy.topology, queue, running, self.policy.limits, quotas)
            ids = [d.id for d in granted]
            if ids:
                session.execute(
                    update(SlotRequestRow)
                    .where(SlotRequestRow.id.in_(ids))
                    .where(SlotRequestRow.state == "waiting")
                    .values(state="granted", granted_at=_now())
                )
        if ids:
            with self._cond:
                self._cond.notify_all()
        return ids

    def tick(self) -> None:
        """At most every ``tick_s`` in this process: reclaim slots of ended steps, grant."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_tick < self.policy.settings.tick_s:
                return
            self._last_tick = now
        self.reclaim()
        self.dispatch()

    def reclaim(self) -> list[str]:
        """Release the requests of steps whose workflow ended (cancelled, failed without
        releasing), and forget released ones older than ``history_days``; returns the ids
        released."""
        kept = _now() - timedelta(days=self.policy.settings.history_days)
        with self.database.session() as session:
            session.execute(
                delete(SlotRequestRow)
                .where(SlotRequestRow.state == "released")
                .where(SlotRequestRow.released_at < kept)
            )
            ids = [r.id for r in self._active(session)]
        if not ids:
            return []
        known = self.statuses(ids)
        ended = [i for i in ids if known.get(i) not in {"PENDING", "ENQUEUED", "DELAYED"}]
        if ended:
            with self.database.session() as session:
                session.execute(
                    update(SlotRequestRow)
                    .where(SlotRequestRow.id.in_(ended))
                    .where(SlotRequestRow.state.in_(ACTIVE))
                    .values(state="released", released_at=_now())
                )
        return ended

    def _active(self, session: Session) -> list[SlotRequestRow]:
        query = select(SlotRequestRow).where(SlotRequestRow.state.in_(ACTIVE))
        if not self.shared:
            query = query.where(SlotRequestRow.worker == self.worker)
        return list(session.execute(query.order_by(SlotRequestRow.seq)).scalars())

    def _ensure_allocation_row(self) -> None:
        if self._ready:
            return
        try:
            with self.database.session() as session:
                if session.get(SlotAllocationRow, ALLOCATION_ID) is None:
                    session.add(
                        SlotAllocationRow(
                            id=ALLOCATION_ID,
                            mode="",
                            level="",
                            quotas="{}",
                            next_at=-1.0,
                            updated_at=_now(),
                        )
                    )
        except IntegrityError:
            pass  # another worker inserted it first
        self._ready = True

    # -- quotas -------------------------------------------------------------------------
    def _quotas(
        self, session: Session, stored: SlotAllocationRow, rows: Sequence[SlotRequestRow]
    ) -> Quotas | None:
        policy = self.policy
        level = policy.level
        if level is None:
            return None
        present = {_placement(r).unit(level) for r in rows}
        units = sorted(set(policy.units) | present)
        configured = policy.weights()
        weights = {u: configured.get(u, 0.0) for u in units}
        allocation = Allocation(
            policy.settings.allocation,
            level,
            policy.capacity,
            weights,
            interval_s=policy.settings.interval_s,
            forecaster=self._forecaster(session, level),
            floor=1 if len(units) <= policy.capacity else 0,
        )
        recorded = json.loads(stored.quotas) if stored.quotas else {}
        same = stored.mode == policy.settings.allocation and stored.level == level
        static = policy.settings.allocation == "static"  # from the weights, every time
        if same and not static and set(recorded) == set(units) and stored.next_at > 0:
            allocation.restore({u: int(v) for u, v in recorded.items()}, stored.next_at)
        queued = _count(rows, level, "waiting")
        running = _count(rows, level, "granted")
        rebalanced = allocation.rebalance(time.time(), queued, running)
        if rebalanced or not same or recorded != dict(allocation.quotas.slots):
            stored.mode = policy.settings.allocation
            stored.level = level
            stored.quotas = json.dumps(dict(allocation.quotas.slots), sort_keys=True)
            stored.next_at = allocation.next_at if math.isfinite(allocation.next_at) else 1.0
            stored.updated_at = _now()
        people = list(policy.people.values())
        return topology_quotas(
            policy.topology, allocation.quotas, tribes_by_region(people), weights
        )

    def _forecaster(self, session: Session, level: Any) -> Callable[[str, float], float] | None:
        if self.policy.settings.allocation != "predictive":
            return None
        forecasts: dict[str, float] = {}
        fitted: list[bool] = []

        def expected(unit: str, now: float) -> float:
            if not fitted:  # fitted once per rebalance, when the allocation asks
                forecasts.update(self.forecast(session, level, now))
                fitted.append(True)
            return forecasts.get(unit, 0.0)

        return expected

    def forecast_now(self) -> dict[str, float]:
        """The forecast :meth:`forecast` makes now, at the topology's level."""
        with self.database.session() as session:
            return self.forecast(session, self.policy.level, time.time())

    def forecast(self, session: Session, level: Any, now: float) -> dict[str, float]:
        """Each unit's expected agents at once in the current hour, forecast from the
        agent-seconds its steps held slots per hour over ``history_days``."""
        hours = self.policy.settings.history_days * 24
        this_hour = math.floor(now / HOUR) * HOUR
        start = this_hour - hours * HOUR
        since = datetime.fromtimestamp(start, UTC)
        held = session.execute(
            select(SlotRequestRow)
            .where(SlotRequestRow.granted_at.is_not(None))
            .where(SlotRequestRow.granted_at >= since)
        ).scalars()
        spans = [
            (
                _placement(r).unit(level),
                _epoch(r.granted_at),
                _epoch(r.released_at) if r.released_at is not None else now,
            )
            for r in held
            if r.granted_at is not None
        ]
        return forecast_slots(hourly_seconds(spans, start, hours))

    # -- observability ----------------------------------------------------------------
    def loads(self) -> list[UnitLoad]:
        """Waiting and granted requests per developer, squad, tribe and region, with the
        quotas in force at the topology's level."""
        with self.database.session() as session:
            rows = self._active(session)
            stored = session.get(SlotAllocationRow, ALLOCATION_ID)
        quotas = json.loads(stored.quotas) if stored is not None and stored.quotas else {}
        level = self.policy.level
        found = []
        for lvl in ("developer", "squad", "tribe", "region"):
            waiting = _count(rows, lvl, "waiting")
            granted = _count(rows, lvl, "granted")
            for unit in sorted(set(waiting) | set(granted)):
                quota = quotas.get(unit) if lvl == level else None
                found.append(UnitLoad(lvl, unit, waiting.get(unit, 0), granted.get(unit, 0), quota))
        return found


def _placement(row: SlotRequestRow) -> Placement:
    return Placement(row.developer, row.squad, row.tribe, row.region)


def _count(rows: Iterable[SlotRequestRow], level: Any, state: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for row in rows:
        if row.state == state:
            unit = _placement(row).unit(level)
            found[unit] = found.get(unit, 0) + 1
    return found
