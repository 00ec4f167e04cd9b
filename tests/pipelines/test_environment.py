"""A test command that cannot start is reported as the environment's fault, at $0."""

from __future__ import annotations

from pathlib import Path

from orchestra.demo import scripted_stack
from orchestra.engine import RosterAgents
from orchestra.pipelines.test_first.environment import cannot_start
from orchestra.testing.scripted import SAMPLE_TASK, create_sample_repository
from orchestra.tools import CommandResult

PYTEST = ["python", "-m", "pytest", "-q"]


def _result(code: int, stdout: str = "", stderr: str = "") -> CommandResult:
    return CommandResult(tuple(PYTEST), code, stdout, stderr, 0.1, False, True)


def test_a_missing_runner_module_is_a_start_failure() -> None:
    missing = _result(1, stderr="/venv/bin/python: No module named pytest\n")
    assert cannot_start(missing, PYTEST) == "No module named pytest"
    assert cannot_start(_result(127, stderr="command not found: python"), PYTEST) == (
        "python: command not found"
    )


def test_failing_tests_are_not_a_start_failure() -> None:
    # A test importing a module that does not exist yet: the tests ran and failed.
    red = _result(
        2,
        stdout="E   ModuleNotFoundError: No module named 'inventory.low'\n1 error in 0.1s",
    )
    assert cannot_start(red, PYTEST) is None
    assert cannot_start(_result(1, stdout="1 failed, 3 passed"), PYTEST) is None
    assert cannot_start(_result(0), PYTEST) is None


def test_a_run_whose_test_command_cannot_start_stops_before_any_model_call(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    with scripted_stack(
        tmp_path / "home",
        agents=pipeline_agents,
        extra_yaml="engine: {test_command: [python, -m, no_such_runner, -q]}",
    ) as stack:
        run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
        row = stack.runtime.wait(run_id, timeout_s=120)
        steps = stack.runtime.services.runs.steps(run_id)
        calls = len(stack.upstream.requests) if stack.upstream else -1
    assert row.status == "failed"
    reason = row.failure_reason or ""
    # The real cause, and the command, with what to change; the test writer is not blamed.
    assert "No module named no_such_runner" in reason
    assert "test_command" in reason  # what to change
    assert "do not break them" not in reason
    assert calls == 0 and steps == []  # stopped before any model call: nothing was spent
    assert row.report_path  # the report still says what happened
