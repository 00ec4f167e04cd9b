"""Organisation-wide agent slots: the stage's cap, the per-developer limit, and the
topology's policy choosing which waiting agent step starts next.

Before an agent step runs it asks for a slot in Orchestra's database
(:class:`~orchestra.engine.slot_table.SlotTable`, one row per step, named after the
step's workflow) and waits until a dispatcher granted it; it gives the slot back when it
ends, by an error too. The dispatcher grants in the order of the configured topology
(``engine.scheduling.topology``, else the stage's), under the quotas of the allocation
mode (``static``, ``dynamic``, ``predictive``).

- **PostgreSQL:** every worker's requests are in one table; any worker dispatches (the one
  requesting or releasing, and each worker with steps waiting, every ``tick_s``) under a
  row lock, so the cap, the per-developer limit and the quotas hold over every worker.
- **SQLite:** the database belongs to one process; only this process's requests count,
  so two ``orchestra run`` on SQLite each get the whole cap.

A step whose worker drains keeps its slot (it continues elsewhere and finds its grant); a
step that ended without giving its slot back (cancelled) loses it to
:meth:`~orchestra.engine.slot_table.SlotTable.reclaim`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from dbos import DBOS

from orchestra.config import SchedulingSettings
from orchestra.engine.draining import GATE
from orchestra.engine.slot_table import SlotPolicy, SlotTable
from orchestra.scheduling import NO_UNIT, Placement
from orchestra.store import Database

SLOT_CHECK_S = 2.0
"""A step waiting for a slot looks at the drain gate at least this often (seconds)."""


@dataclass(frozen=True)
class OrgSlots:
    """The organisation-wide limits and policy an engine takes agent slots under."""

    capacity: int
    """The stage's maximum of concurrent agents (``max_concurrent_agents``)."""
    per_developer: int
    """``agents_per_developer``."""
    developer: str
    """Whose agents this process runs when a run names nobody else."""
    executor: str = ""
    """This worker's executor id."""
    topology: str = "single_node"
    settings: SchedulingSettings = field(default_factory=SchedulingSettings)
    people: Mapping[str, Placement] = field(default_factory=dict)
    """Every configured developer's squad, tribe and region."""
    units: tuple[str, ...] = ()
    """The units of the topology's level (squads, tribes or regions) quotas go to."""
    shared: bool = True
    """PostgreSQL: the slots are shared by every worker; SQLite: by this process only."""

    def placement(self, developer: str | None = None) -> Placement:
        """Where ``developer`` (default: this process's) sits in the organisation."""
        name = developer or self.developer
        return self.people.get(name, Placement(name, NO_UNIT, NO_UNIT, NO_UNIT))

    @property
    def policy(self) -> SlotPolicy:
        """What the dispatcher grants under."""
        return SlotPolicy(
            self.capacity, self.per_developer, self.topology, self.settings, self.people, self.units
        )

    def table(self, database: Database) -> SlotTable:
        """The slot table in ``database``, granting under this policy."""
        return SlotTable(database, self.policy, self.executor, self.shared, workflow_statuses)


def workflow_statuses(ids: list[str]) -> dict[str, str]:
    """DBOS's status of each of the workflows ``ids`` it knows."""

    # Outside any workflow: inside one DBOS records each query as a step, and a varying
    # number of them would break replay.
    def read() -> dict[str, str]:
        found = DBOS.list_workflows(workflow_ids=ids, load_input=False, load_output=False)
        return {wf.workflow_id: wf.status for wf in found}

    return contextvars.Context().run(read)


@contextmanager
def agent_slot(table: SlotTable, placement: Placement, holder: str | None = None) -> Iterator[str]:
    """Wait for an organisation-wide slot for ``holder`` (default: the current workflow),
    hold it for the block, give it back after; yields the holder."""
    holder = holder or DBOS.workflow_id
    if holder is None:
        raise RuntimeError("agent_slot is used inside a workflow")
    state: str | None = table.request(holder, placement)
    if state != "granted":
        table.dispatch()
        state = table.state(holder)
    while state != "granted":
        GATE.park()  # a draining worker's waiting steps park here and end with it
        table.wait(min(table.policy.settings.poll_s, SLOT_CHECK_S))
        table.tick()
        state = table.state(holder)
        if state not in ("waiting", "granted"):  # reclaimed meanwhile: ask again
            state = table.request(holder, placement)
    try:
        yield holder
    except SystemExit:
        # The worker drained or lost its lease (orchestra.engine.draining): the step
        # continues on another worker, which finds this slot still granted to it.
        raise
    except BaseException:
        _release(table, holder)
        raise
    _release(table, holder)


def _release(table: SlotTable, holder: str) -> None:
    table.release(holder)
    table.dispatch()
