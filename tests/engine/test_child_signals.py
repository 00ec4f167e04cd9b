"""The in-process notices a parent workflow waits on instead of polling its children."""

from __future__ import annotations

import threading
import time

from orchestra.engine import ChildSignals


def test_wait_returns_as_soon_as_the_child_says_it_returned() -> None:
    signals = ChildSignals()
    timer = threading.Timer(0.05, signals.mark_done, args=("run-1:green-1",))
    started = time.monotonic()
    timer.start()
    assert signals.wait("run-1:green-1", timeout_s=5.0)
    assert time.monotonic() - started < 2.0
    timer.join()


def test_a_notice_given_before_the_wait_is_not_lost_and_is_consumed() -> None:
    signals = ChildSignals()
    signals.mark_done("run-1:plan-1")
    assert signals.wait("run-1:plan-1", timeout_s=0.0)
    # Consumed: a second wait for the same child times out instead of seeing it again.
    assert not signals.wait("run-1:plan-1", timeout_s=0.01)


def test_another_child_notice_does_not_wake_the_wrong_waiter() -> None:
    signals = ChildSignals()
    signals.mark_done("run-1:review-1")
    assert not signals.wait("run-1:review-2", timeout_s=0.05)
    assert signals.wait("run-1:review-1", timeout_s=0.0)
