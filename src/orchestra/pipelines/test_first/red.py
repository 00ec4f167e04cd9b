"""Red: the test writer's tests, committed and proven failing for the right reason."""

from __future__ import annotations

import functools
from typing import Any

from orchestra.engine import checkpoint
from orchestra.pipelines import gates
from orchestra.pipelines.plan import Plan
from orchestra.pipelines.test_first.state import RedVerdict
from orchestra.pipelines.test_first.steps import TEST_WRITER, RunFailed, TestFirstRun, empty_run


def red_phase(run: TestFirstRun) -> None:
    """Tests from the plan, accepted by the red gate, committed: ``run.state.tests``."""
    state = run.state
    plan = state.require_plan()
    run.phase("red")
    run.mark("red", "start")
    feedback = ""
    engine = run.svc.config.engine
    pytest_runner = gates.is_pytest(run.svc.test_command(run.row.repo_path))
    for attempt in range(1, engine.red_attempts + 1):

        def build(feedback: str = feedback) -> str:
            sources = [f for part in plan.parts for f in part.files]
            text = run.brief(plan, state.summaries)
            text += "\n## Files the implementation will touch\n" + run.files_block(sources)
            text += (
                "\n\nWrite the tests from the plan. They must fail now because the "
                "behaviour is missing, and pass once it is implemented. Write only test "
                "files; do not implement anything."
            )
            if feedback:
                text += f"\n\n## The engine rejected your tests\n{feedback}"
            return text

        message = run.prepared(f"red-{attempt}", build)
        step = f"red-{attempt}"
        run.agents(
            [
                run.task(
                    step,
                    "red",
                    TEST_WRITER,
                    message,
                    allowed_writes=list(gates.TEST_PATTERNS),
                    write_reason="The test writer writes tests only.",
                )
            ]
        )
        verdict = red_gate(run, attempt, plan, pytest_runner)
        if verdict.accepted:
            state.red = verdict
            tests = list(verdict.new_tests)
            run.commit("tests", f"test: failing tests for: {run.row.task[:60]}", tests)
            ws = run.workspace()
            state.test_hashes = checkpoint("hash:red", functools.partial(ws.file_hashes, tests))
            state.summaries.append(f"red: tests written and failing: {', '.join(tests)}")
            state.tests = tests
            run.mark("red", "end")
            return
        state.red_rejections.append(verdict.reason)
        feedback = verdict.reason + "\n\nOutput:\n" + verdict.output[-6000:]
    raise RunFailed(
        f"red gate: tests not accepted after {engine.red_attempts} "
        f"attempts; last reason: {state.red_rejections[-1]}"
    )


def red_gate(run: TestFirstRun, attempt: int, plan: Plan, pytest_runner: bool) -> RedVerdict:
    """Judge the written tests (a step): compile, existing tests still pass, new ones fail
    because the behaviour is missing."""

    def go() -> dict[str, Any]:
        ws = run.workspace()
        new_tests = [p for p in ws.uncommitted_files() if gates.is_test_path(p)]
        new_tests = [p for p in new_tests if (ws.root / p).exists()]
        errors = gates.syntax_errors(ws.root, new_tests)
        home = run.svc.artifacts.run_dir(run.run_id) / "home"
        box = run.toolbox()
        existing = None
        if new_tests and not errors and pytest_runner:
            existing = gates.run_tests(box, [], home / f"red-{attempt}-existing.xml", new_tests)
        new = (
            gates.run_tests(box, new_tests, home / f"red-{attempt}-new.xml")
            if new_tests and not errors
            else None
        )
        if new is None:
            verdict = gates.judge_red(new_tests, errors, None, empty_run(), set(), pytest_runner)
        else:
            verdict = gates.judge_red(
                new_tests, errors, existing, new, plan.module_names(), pytest_runner
            )
        log = run.svc.artifacts.put_text(
            run.run_id,
            f"tests/red-{attempt}.log",
            verdict.reason + "\n\n" + verdict.output,
            "test-log",
        )
        return {
            "accepted": verdict.accepted,
            "reason": verdict.reason,
            "output": verdict.output[-8000:],
            "new_tests": new_tests,
            "log": log,
            "counts": new.counts if new is not None else {},
            "attempt": attempt,
        }

    return RedVerdict.from_step(checkpoint(f"gate:red:{attempt}", go))
