"""This process as one worker of the fleet sharing a PostgreSQL database.

:class:`FleetMember` is what :class:`~orchestra.engine.runtime.EngineRuntime` holds on
PostgreSQL: it takes the executor id's lease before DBOS launches (a duplicate is
refused), starts the heartbeat and the reaper once it has, and records how the worker
left (``stopped``, or ``drained`` so that others take its work at once).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestra.config import OrchestraConfig
from orchestra.engine.draining import stop_taking_work
from orchestra.engine.recovery import recover_executor, runs_queue_name, stranded
from orchestra.engine.services import EngineServices
from orchestra.engine.workers import WorkerLease, WorkerRegistry
from orchestra.store import Database

EXECUTOR_ENV = "ORCHESTRA_EXECUTOR_ID"
"""Environment variable naming this worker's executor id (wins over the config)."""

log = logging.getLogger("orchestra.engine")


def worker_executor_id(config: OrchestraConfig) -> str:
    """``$ORCHESTRA_EXECUTOR_ID``, else ``engine.workers.executor_id``, else a new one."""
    chosen = os.environ.get(EXECUTOR_ENV) or config.engine.workers.executor_id
    return chosen or f"orchestra-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def shared_database(database: Database) -> bool:
    """Whether workers share ``database`` (PostgreSQL), so leases and reaping apply."""
    return database.engine.dialect.name == "postgresql"


@dataclass
class FleetMember:
    """This worker's lease, heartbeat and reaper."""

    registry: WorkerRegistry
    executor_id: str
    heartbeat_s: float
    sweep_s: float = 60.0
    reaper: bool = True
    lease: WorkerLease | None = None
    scheduling: Mapping[str, Any] | None = None
    """The settings it grants agent slots under, which every live worker must share
    (``None``: it takes no slots)."""

    @classmethod
    def for_services(cls, services: EngineServices, executor_id: str) -> FleetMember | None:
        """The member for ``services``' database, or ``None`` on SQLite (one process)."""
        if not shared_database(services.database):
            return None
        settings = services.config.engine.workers
        return cls(
            registry=WorkerRegistry(services.database, settings.timeout_s),
            executor_id=executor_id,
            heartbeat_s=settings.heartbeat_s,
            sweep_s=settings.sweep_s,
            scheduling=(
                None if services.org_slots is None else services.org_slots.policy.shared_settings()
            ),
        )

    @property
    def runs_queue(self) -> str:
        """The queue this worker takes recovered runs from."""
        return runs_queue_name(self.executor_id)

    def join(self) -> None:
        """Take the executor id's lease and start heartbeating (before DBOS launches,
        which can take longer than a lease: the others must not think it dead):
        refused while another live worker holds the id, or grants agent slots under
        other scheduling settings."""
        self.registry.acquire(self.executor_id, socket.gethostname(), os.getpid(), self.scheduling)
        self.lease = WorkerLease(
            self.registry,
            self.executor_id,
            self.heartbeat_s,
            on_lost=stop_taking_work,
            sweep_s=self.sweep_s,
        )
        self.lease.start()

    def start_reaping(self, services: EngineServices) -> None:
        """Recover dead workers' work in this process from now on (DBOS is up), and
        sweep workflows stranded on workers that already left."""

        def recover(dead: str, still_held: Callable[[], bool]) -> int:
            return recover_executor(dead, services, self.runs_queue, still_held)

        if self.reaper and self.lease is not None:
            self.lease.reap_with(recover, stranded)

    def mark(self, state: str) -> None:
        """Record ``state`` (``draining``, ``drained``, ``stopped``)."""
        self.registry.set_state(self.executor_id, state)

    def leave(self, state: str) -> None:
        """Stop the heartbeat and reaper, and record how this worker left."""
        if self.lease is not None:
            self.lease.stop()
            self.lease = None
        try:
            self.mark(state)
        except Exception:  # the database going away must not stop the shutdown
            log.exception("worker %s: recording %s failed", self.executor_id, state)
