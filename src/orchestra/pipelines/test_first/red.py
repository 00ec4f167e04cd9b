"""Red: the test writer's tests, committed and proven failing for the right reason."""

from __future__ import annotations

import functools
from typing import Any

from orchestra.engine import checkpoint
from orchestra.pipelines import gates
from orchestra.pipelines.plan import Plan
from orchestra.pipelines.test_first.planning import PlanningPhase
from orchestra.pipelines.test_first.steps import (
    TEST_WRITER,
    RunFailed,
    _empty_run,
)


class RedPhase(PlanningPhase):
    """Red: the test writer's tests, committed and proven failing for the right reason."""

    def red(self, plan: Plan) -> list[str]:
        self.phase("red")
        self.clock.mark("red", "start")
        feedback = ""
        pytest_runner = gates.is_pytest(self.svc.test_command(self.run.repo_path))
        for attempt in range(1, self.svc.config.engine.red_attempts + 1):

            def build(feedback: str = feedback) -> str:
                sources = [f for part in plan.parts for f in part.files]
                text = self.brief(plan, self.record["summaries"])
                text += "\n## Files the implementation will touch\n" + self.files_block(sources)
                text += (
                    "\n\nWrite the tests from the plan. They must fail now because the "
                    "behaviour is missing, and pass once it is implemented. Write only test "
                    "files; do not implement anything."
                )
                if feedback:
                    text += f"\n\n## The engine rejected your tests\n{feedback}"
                return text

            message = self.prepared(f"red-{attempt}", build)
            step = f"red-{attempt}"
            self.agents(
                [
                    self.task(
                        step,
                        "red",
                        TEST_WRITER,
                        message,
                        allowed_writes=list(gates.TEST_PATTERNS),
                        write_reason="The test writer writes tests only.",
                    )
                ]
            )
            verdict = self.red_gate(attempt, plan, pytest_runner)
            if verdict["accepted"]:
                self.record["red"] = verdict
                tests = list(verdict["new_tests"])
                self.commit("tests", f"test: failing tests for: {self.run.task[:60]}", tests)
                ws = self.workspace()
                self.record["test_hashes"] = checkpoint(
                    "hash:red", functools.partial(ws.file_hashes, tests)
                )
                self.record["summaries"].append(
                    f"red: tests written and failing: {', '.join(tests)}"
                )
                self.clock.mark("red", "end")
                return tests
            self.record.setdefault("red_rejections", []).append(verdict["reason"])
            feedback = verdict["reason"] + "\n\nOutput:\n" + verdict["output"][-6000:]
        raise RunFailed(
            f"red gate: tests not accepted after {self.svc.config.engine.red_attempts} "
            f"attempts; last reason: {self.record['red_rejections'][-1]}"
        )

    def red_gate(self, attempt: int, plan: Plan, pytest_runner: bool) -> dict[str, Any]:
        def go() -> dict[str, Any]:
            ws = self.workspace()
            new_tests = [p for p in ws.uncommitted_files() if gates.is_test_path(p)]
            new_tests = [p for p in new_tests if (ws.root / p).exists()]
            errors = gates.syntax_errors(ws.root, new_tests)
            home = self.svc.artifacts.run_dir(self.run_id) / "home"
            box = self.toolbox()
            existing = None
            if new_tests and not errors and pytest_runner:
                existing = gates.run_tests(box, [], home / f"red-{attempt}-existing.xml", new_tests)
            new = (
                gates.run_tests(box, new_tests, home / f"red-{attempt}-new.xml")
                if new_tests and not errors
                else None
            )
            if new is None:
                verdict = gates.judge_red(
                    new_tests, errors, None, _empty_run(), set(), pytest_runner
                )
            else:
                verdict = gates.judge_red(
                    new_tests, errors, existing, new, plan.module_names(), pytest_runner
                )
            log = self.svc.artifacts.put_text(
                self.run_id,
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

        result: dict[str, Any] = checkpoint(f"gate:red:{attempt}", go)
        return result
