"""Cancelling a run stops its workflow and agents; the branch keeps what was done."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestra.demo import scripted_stack
from orchestra.engine.agents import RosterAgents
from orchestra.errors import EngineError
from orchestra.testing.scripted import SAMPLE_TASK, ScriptedModel, create_sample_repository
from orchestra.testing.steps import RecordedRequest, Reply
from tests.engine.helpers import call_keys

pytestmark = pytest.mark.slow


@dataclass
class HoldFirstCall:
    """A responder that holds the first model call of ``step`` until released.

    The test cancels while that call is in flight, with no timing involved: the call was
    already received (and counted) by the upstream and cannot be answered before the
    cancel has happened.
    """

    model: ScriptedModel
    step: str
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def __call__(self, request: RecordedRequest) -> Reply | None:
        if not self.reached.is_set() and call_keys([request]).get((self.step, 0)):
            self.reached.set()
            # Blocks the fake upstream's loop; nothing else calls the model meanwhile
            # (the red phase has one agent), and the timeout only guards a broken test.
            self.released.wait(timeout=120)
        return self.model(request)


def test_cancel_stops_a_running_run(tmp_path: Path, pipeline_agents: RosterAgents) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    with scripted_stack(tmp_path / "home", agents=pipeline_agents) as stack:
        assert stack.upstream is not None
        hold = HoldFirstCall(ScriptedModel("happy"), step="red-1")
        stack.upstream.responder = hold
        runtime = stack.runtime
        run_id = runtime.start_run(SAMPLE_TASK, repo)
        assert hold.reached.wait(timeout=120), "the red phase never called the model"
        calls_at_cancel = len(stack.upstream.requests)
        try:
            runtime.cancel(run_id)
        finally:
            hold.released.set()
        row = runtime.wait(run_id, timeout_s=60)
        with pytest.raises(EngineError, match="already ended"):
            runtime.cancel(run_id)
        keys = stack.gateway.accounting.keys.run_keys(run_id)
    # The stack has stopped (the engine waited for its workflows, the gateway is closed):
    # every call the run will ever make has reached the upstream by now. The call in
    # flight at the cancel was answered; the agent stopped at its next step and made no
    # further call.
    assert len(stack.upstream.requests) == calls_at_cancel
    assert row.status == "cancelled"
    assert row.failure_reason == "cancelled by user"
    # The run's key was revoked with the cancel: nothing can spend on the run any more.
    assert len(keys) == 1 and keys[0].revoked_at is not None
    steps = {s.phase for s in runtime.services.runs.steps(run_id)}
    assert "green" not in steps
