"""Preflight: before any model call, the test command must be able to start."""

from __future__ import annotations

from orchestra.engine import checkpoint
from orchestra.pipelines.test_first.environment import probe_test_command
from orchestra.pipelines.test_first.steps import RunFailed, TestFirstRun


def check_test_command(run: TestFirstRun) -> None:
    """End the run at $0 when its test command cannot start in the sandbox (a step, so
    a resumed run does not probe again)."""
    problem: str | None = checkpoint(
        "preflight:test-command", lambda: probe_test_command(run.toolbox())
    )
    if problem is not None:
        raise RunFailed(problem)
