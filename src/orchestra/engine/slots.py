"""Organisation-wide agent slots: the stage's cap and the per-developer limit held across
every worker process sharing the DBOS system database (PostgreSQL).

Agent steps run on their own process's queue (they need its worktree and its gateway
key), so the limits are held by a second, shared DBOS queue. Before an agent step starts
it enqueues a *slot* workflow on :data:`SLOT_QUEUE`, whose ``global_concurrency`` is the
stage's cap and whose ``partition_concurrency`` (partitioned by developer) is
``agents_per_developer``; the step waits until its slot workflow has been dequeued (it
holds a slot), runs, and then tells the slot workflow to end. DBOS counts the queue's
running workflows across all executors, so N processes never hold more than the cap
together. A slot workflow also ends by itself once its agent step has ended without releasing it
(a cancelled step), so such a step never keeps its slot.

On SQLite the system database is one file of one process: the per-process queue's
``worker_concurrency`` is the cap, and no slot queue is used.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dbos import DBOS, SetEnqueueOptions, SetWorkflowID

from orchestra.engine.draining import GATE

SLOT_QUEUE = "orchestra-agent-slots"
"""The DBOS queue every worker shares; its running workflows are the agents running."""
RELEASE_TOPIC = "orchestra.slot.release"
SLOT_CHECK_S = 2.0
"""How often a slot workflow checks that its agent step is still running (seconds)."""


@dataclass(frozen=True)
class OrgSlots:
    """The organisation-wide limits an engine takes slots under."""

    capacity: int
    """The stage's maximum of concurrent agents (``max_concurrent_agents``)."""
    per_developer: int
    """``agents_per_developer``."""
    developer: str
    """Whose agents this process runs (the slot queue's partition)."""


def register_slot_queue(slots: OrgSlots, polling_interval_s: float) -> None:
    """Declare the shared slot queue (every worker declares it the same way)."""
    DBOS.register_queue(
        SLOT_QUEUE,
        global_concurrency=slots.capacity,
        partition_concurrency=min(slots.per_developer, slots.capacity),
        polling_interval_sec=polling_interval_s,
    )


def _status(workflow_id: str) -> str | None:
    # Outside any workflow: inside one DBOS records each status query as a step, and a
    # varying number of them would break replay.
    def read() -> str | None:
        found = DBOS.get_workflow_status(workflow_id)
        return None if found is None else found.status

    return contextvars.Context().run(read)


@DBOS.workflow(name="orchestra.agent_slot")
def agent_slot_workflow(holder: str) -> None:
    """Hold one organisation-wide agent slot until ``holder`` (an agent step) releases it
    or ends."""
    while DBOS.recv(RELEASE_TOPIC, timeout_seconds=SLOT_CHECK_S) is None:
        with GATE.step():  # a draining worker parks it here (it stays held)
            ended = DBOS.run_step(
                {"name": "holder_ended"},
                lambda: _status(holder) not in {"PENDING", "ENQUEUED", "DELAYED", None},
            )
        if ended:
            return


@contextmanager
def agent_slot(slots: OrgSlots, poll_s: float) -> Iterator[str]:
    """Inside an agent step's workflow: wait for an organisation-wide slot, hold it for the
    block, release it after; yields the slot workflow's id."""
    holder = DBOS.workflow_id
    if holder is None:
        raise RuntimeError("agent_slot is used inside a workflow")
    slot_id = f"{holder}:slot"
    with SetWorkflowID(slot_id), SetEnqueueOptions(queue_partition_key=slots.developer):
        DBOS.enqueue_workflow(SLOT_QUEUE, agent_slot_workflow, holder)
    while _status(slot_id) in {"ENQUEUED", "DELAYED", None}:
        time.sleep(poll_s)
    try:
        yield slot_id
    except SystemExit:
        # The worker drained (orchestra.engine.draining): the step continues on another
        # worker, still holding this slot (its replay finds the slot workflow running).
        raise
    except BaseException:
        DBOS.send(slot_id, "release", topic=RELEASE_TOPIC)
        raise
    DBOS.send(slot_id, "release", topic=RELEASE_TOPIC)
