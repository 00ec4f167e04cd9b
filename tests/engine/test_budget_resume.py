"""A run stopped by its budget continues with a higher one (issue 10 §6):
``orchestra resume RUN --budget USD``; the steps before the stop are not repeated."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.demo import scripted_stack
from orchestra.engine import stopped_by_budget
from orchestra.engine.agents import RosterAgents
from orchestra.errors import EngineError
from orchestra.testing.scripted import SAMPLE_TASK, create_sample_repository
from tests.engine.helpers import branch_log, call_keys, report_of


@pytest.mark.slow  # a run stopped part-way, then continued to its end (~1 min when busy)
def test_a_run_stopped_by_its_budget_continues_with_a_higher_one(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    # Small replies keep the per-call reservation below the budget: the plan fits in
    # $0.2 (~$0.11), the run as a whole (~$0.23) does not. 600 is above the scripted
    # model's longest reply (~490 tokens), which the fake upstream would otherwise cut.
    with scripted_stack(
        tmp_path / "home", agents=pipeline_agents, extra_yaml="engine: {max_output_tokens: 600}"
    ) as stack:
        runtime = stack.runtime
        run_id = runtime.start_run(SAMPLE_TASK, repo, budget_usd=0.2)
        stopped = runtime.wait(run_id, timeout_s=300)
        assert stopped_by_budget(stopped), stopped.failure_reason
        assert f"orchestra resume {run_id} --budget USD" in (stopped.failure_reason or "")
        calls_before = len(stack.upstream.requests) if stack.upstream else 0
        with pytest.raises(EngineError) as refused:
            runtime.resume(run_id)
        assert f"orchestra resume {run_id} --budget USD" in (refused.value.hint or "")
        with pytest.raises(EngineError, match="not above the run's"):
            runtime.continue_run(run_id, 0.1)

        runtime.continue_run(run_id, 2.0)
        row = runtime.wait(run_id, timeout_s=300)
        requests = list(stack.upstream.requests) if stack.upstream else []
        keys = stack.gateway.accounting.keys.run_keys(run_id)
        spent = sum(stack.gateway.costs_for_run(run_id).values())
    assert row.status == "succeeded", row.failure_reason
    assert row.budget_usd == 2.0
    assert calls_before > 0 and len(requests) > calls_before
    # No model call answered before the stop was made again (the refused one never
    # reached the upstream): the steps before the stop were replayed from their records.
    assert max(call_keys(requests).values()) == 1
    assert report_of(row)["status"] == "succeeded"
    assert [s.split(":")[0] for s in branch_log(repo, str(row.branch))][:2] == ["test", "feat"]
    # A key for each stretch of the run, the same developer's, none left usable.
    assert len(keys) == 2 and {k.developer for k in keys} == {"developer"}
    assert all(k.revoked_at is not None for k in keys)
    assert 0.2 < spent <= 2.0
