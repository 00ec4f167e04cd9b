"""Red: the test writer's tests, committed and proven failing for the right reason."""

from __future__ import annotations

import functools
from typing import Any

from orchestra.engine import checkpoint
from orchestra.pipelines import gates
from orchestra.pipelines.plan import Plan
from orchestra.pipelines.test_first.preflight import baseline_ids
from orchestra.pipelines.test_first.state import RedVerdict
from orchestra.pipelines.test_first.steps import (
    TEST_WRITER,
    RunFailed,
    TestFirstRun,
    start_failure,
)
from orchestra.pipelines.text import commit_subject
from orchestra.repository import is_test_support
from orchestra.repository import red_gate as judge_red

RED_WRITES = (
    *gates.TEST_PATTERNS,
    "conftest.py",
    "*/conftest.py",
    "*_test.go",
    "*.test.*",
    "*.spec.*",
    "*/__tests__/*",
)
"""Where the test writer may write: test files and test helpers, in any language."""


def red_phase(run: TestFirstRun) -> None:
    """Tests from the plan, accepted by the red gate, committed: ``run.state.tests``."""
    state = run.state
    plan = state.require_plan()
    run.phase("red")
    run.mark("red", "start")
    feedback = ""
    engine = run.svc.config.engine
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
                    allowed_writes=list(RED_WRITES),
                    write_reason="The test writer writes tests only.",
                )
            ]
        )
        verdict = red_gate(run, attempt, plan)
        if verdict.accepted:
            state.red = verdict
            tests = list(verdict.new_tests)
            run.commit("tests", commit_subject("test: failing tests for: ", run.row.task), tests)
            ws = run.workspace()
            state.test_hashes = checkpoint("hash:red", functools.partial(ws.file_hashes, tests))
            state.summaries.append(f"red: tests written and failing: {', '.join(tests)}")
            state.tests = tests
            run.mark("red", "end")
            return
        state.red_rejections.append(verdict.headline or verdict.reason)
        feedback = verdict.reason + ("\n\nDetails:\n" + verdict.output if verdict.output else "")
    raise RunFailed(
        f"red gate: tests not accepted after {engine.red_attempts} "
        f"attempts; last reason: {state.red_rejections[-1]}"
    )


def red_gate(run: TestFirstRun, attempt: int, plan: Plan) -> RedVerdict:
    """Judge the written tests per test case (a step): the new and changed tests fail
    because the behaviour is missing, every other test still passes."""

    def go() -> dict[str, Any]:
        ws = run.workspace()
        written = [p for p in ws.uncommitted_files() if is_test_support(p)]
        written = [p for p in written if (ws.root / p).exists()]
        if not written:
            reason = "no test files were written; write tests under tests/"
            return {
                "accepted": False,
                "reason": reason,
                "headline": reason,
                "output": "",
                "new_tests": [],
                "log": run.svc.artifacts.put_text(
                    run.run_id, f"tests/red-{attempt}.log", reason, "test-log"
                ),
                "counts": {},
                "attempt": attempt,
            }
        home = run.svc.artifacts.run_dir(run.run_id) / "home"
        result = judge_red(
            run.environment(),
            ws.root,
            base_commit=ws.base_commit,
            base_ids=baseline_ids(run),
            planned_files=[f for part in plan.parts for f in part.files],
            home=home,
            limits=run.svc.limits(),
            report_dir=home / "reports",
            preexisting=run.preexisting(),
            name=f"red-{attempt}",
        )
        verdict = result.verdict
        details = result.details()
        run.show_tests(
            f"red-{attempt}",
            "red gate accepted: the new tests fail for the right reason"
            if verdict.accepted
            else f"red gate rejected: {(verdict.headline or verdict.reason)[:200]}",
            dict(result.report.counts),
        )
        env = run.environment()
        log = run.svc.artifacts.put_text(
            run.run_id,
            f"tests/red-{attempt}.log",
            verdict.reason + "\n\n" + details + "\n\n" + result.report.output,
            "test-log",
        )
        return {
            "accepted": verdict.accepted,
            "reason": verdict.reason,
            "headline": verdict.headline,
            "output": details,
            "new_tests": written,
            "log": log,
            "counts": result.new_case_counts(),
            "attempt": attempt,
            "cannot_start": start_failure(env, result.report),
        }

    verdict = RedVerdict.from_step(checkpoint(f"gate:red:{attempt}", go))
    run.refuse_environment(verdict.cannot_start)
    return verdict
