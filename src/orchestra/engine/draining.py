"""Draining a worker: finish the steps in progress, start no new one, leave the rest.

Every durable step of the engine (model calls, tool calls, gates, test runs: everything
that goes through :func:`orchestra.engine.durable.checkpoint`) passes :data:`GATE`. When a
worker drains (``SIGTERM``), the gate closes: a step in progress runs to its end and is
recorded, a workflow reaching its next step waits at the gate. Once no step is in
progress the runtime stops DBOS and opens the gate with ``SystemExit``, which ends the
parked workflow threads without recording anything (a ``BaseException``: no ``except
Exception`` on the way, DBOS's included, records the workflow as failed); their workflows
stay ``PENDING`` for another worker to continue from their last recorded step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class DrainGate:
    """Counts the steps in progress and holds new ones back while the worker drains."""

    def __init__(self) -> None:
        """An open gate with no step in progress."""
        self._cond = threading.Condition()
        self._in_progress = 0
        self._closed = False
        self._stopped = False
        self._fenced = False

    def _wait_open(self) -> None:
        while self._closed and not self._stopped:
            self._cond.wait()
        if self._stopped:
            raise SystemExit("this worker drained; the workflow continues elsewhere")

    def park(self) -> None:
        """Where a workflow waits between steps (a parent waiting for its agents): it
        parks while the worker drains, and ends with the worker."""
        with self._cond:
            self._wait_open()

    @contextmanager
    def step(self) -> Iterator[None]:
        """Around one step: wait while the gate is closed; count the step meanwhile."""
        with self._cond:
            self._wait_open()
            self._in_progress += 1
        try:
            yield
        finally:
            with self._cond:
                self._in_progress -= 1
                self._cond.notify_all()

    @property
    def in_progress(self) -> int:
        """Steps running now."""
        with self._cond:
            return self._in_progress

    def close(self) -> None:
        """Start draining: no step starts from now on."""
        with self._cond:
            self._closed = True

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no step is in progress (``False``: ``timeout_s`` passed first)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._in_progress:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        """Release the parked threads with ``SystemExit`` (DBOS is stopped)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def fence(self) -> None:
        """This worker lost its lease (others were told it is dead and took its work): no
        step starts, and a step that ends from now on is not recorded (:meth:`check`)."""
        with self._cond:
            self._closed = self._fenced = True

    def check(self) -> None:
        """Inside a step, before DBOS records its result: a fenced worker's result is
        dropped (``SystemExit``), so it never overrides the worker continuing the step."""
        if self._fenced:
            raise SystemExit("this worker lost its lease; the step continues elsewhere")

    def reset(self) -> None:
        """Open the gate again (a new runtime launches in this process)."""
        with self._cond:
            self._closed = self._stopped = self._fenced = False


GATE = DrainGate()
"""The gate of this process's engine (one launched runtime per process)."""


def stop_dequeuing() -> None:
    """Stop this process's DBOS queue threads: it takes no new workflow from now on
    (DBOS has no public call for it; its own shutdown starts by setting these events)."""
    from dbos import _dbos

    instance = _dbos._dbos_global_instance
    if instance is not None:
        for event in instance.background_thread_stop_events:
            event.set()


def stop_taking_work() -> None:
    """What a worker that lost its lease does: no new workflow, no new step, and no
    result of a step still running recorded."""
    stop_dequeuing()
    GATE.fence()
