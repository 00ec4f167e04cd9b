"""The drain gate: a step in progress finishes, a new one waits and then ends with the
worker; a fenced worker (lease lost) records no result."""

from __future__ import annotations

import threading
import time

import pytest

from orchestra.engine.draining import DrainGate


def test_a_closed_gate_lets_the_step_in_progress_finish_and_parks_the_next() -> None:
    gate = DrainGate()
    inside, finish = threading.Event(), threading.Event()
    ended: list[str] = []

    def running_step() -> None:
        with gate.step():
            inside.set()
            finish.wait(10)
        ended.append("first step recorded")

    def next_step() -> None:
        try:
            with gate.step():
                ended.append("second step ran")  # must never happen
        except SystemExit:
            ended.append("parked, then ended with the worker")

    first = threading.Thread(target=running_step)
    first.start()
    assert inside.wait(10)
    gate.close()
    second = threading.Thread(target=next_step)
    second.start()
    assert not gate.wait_idle(0.1)  # the first step is still running
    finish.set()
    assert gate.wait_idle(10)
    time.sleep(0.05)
    assert ended == ["first step recorded"] and second.is_alive()  # parked at the gate
    gate.stop()
    second.join(10)
    assert ended == ["first step recorded", "parked, then ended with the worker"]
    with pytest.raises(SystemExit):
        gate.park()


def test_a_fenced_worker_drops_results_and_a_reset_opens_the_gate() -> None:
    gate = DrainGate()
    gate.check()  # not fenced: results are recorded
    gate.fence()
    with pytest.raises(SystemExit, match="lost its lease"):
        gate.check()
    gate.reset()
    gate.check()
    with gate.step():
        assert gate.in_progress == 1
