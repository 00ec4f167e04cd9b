"""Green: implementers, one per part, until the new and existing tests pass."""

from __future__ import annotations

from typing import Any

from orchestra.engine import checkpoint
from orchestra.pipelines.plan import Plan
from orchestra.pipelines.test_first.red import RedPhase
from orchestra.pipelines.test_first.steps import (
    RunFailed,
)
from orchestra.tools.workspace import git


class GreenPhase(RedPhase):
    """Green: implementers, one per part, until the new and existing tests pass."""

    def implementers(self, plan: Plan) -> list[tuple[str, Any]]:
        return [(self.svc.agents.pick_for_files(part.files), part) for part in plan.parts]

    def green(self, plan: Plan, tests: list[str]) -> None:
        self.phase("green")
        self.clock.mark("green", "start")
        feedback = ""
        red_log = self.svc.artifacts.get_text(self.run_id, self.record["red"]["log"])
        for iteration in range(1, self.svc.config.engine.green_iterations + 1):
            tasks = []
            for agent, part in self.implementers(plan):

                def build(part: Any = part, feedback: str = feedback) -> str:
                    text = self.brief(plan, self.record["summaries"])
                    text += f"\n## Your part: {part.name}\n{part.description}\n"
                    text += "\n## The tests to make pass (do not change them)\n"
                    text += self.files_block(tests)
                    text += "\n\n## Your files\n" + self.files_block(part.files)
                    if feedback:
                        text += f"\n\n## Test output after the last round\n{feedback}"
                    else:
                        text += f"\n\n## The failing test output\n{red_log[-4000:]}"
                    return text

                step = f"green-{iteration}-{part.name}"
                tasks.append(self.part_task(step, "green", agent, part, build, tests))
            self.agents(tasks)
            outcome = self.green_gate(f"green-{iteration}", tests)
            if outcome["ok"]:
                self.record["green"] = {**outcome, "iterations": iteration}
                files = [f for part in plan.parts for f in part.files]
                self.commit("implementation", f"feat: {self.run.task[:72]}", files)
                self.record["summaries"].append(f"green: all tests pass after {iteration} round(s)")
                self.clock.mark("green", "end")
                return
            feedback = outcome["feedback"]
        raise RunFailed(
            f"green gate: tests still failing after "
            f"{self.svc.config.engine.green_iterations} implementation rounds"
        )

    def green_gate(self, name: str, protected: list[str]) -> dict[str, Any]:
        def check() -> dict[str, Any]:
            ws = self.workspace()
            now = ws.file_hashes(protected)
            changed = [p for p, h in now.items() if h != self.record["test_hashes"].get(p)]
            if changed:
                # The committed tests are the contract: put them back and say so.
                git(ws.root, "checkout", "HEAD", "--", *changed)
            return {"tampered": changed}

        tamper = checkpoint(f"hash:{name}", check)
        result = self.test_run(name, [])
        log = self.svc.artifacts.get_text(self.run_id, result["log"])
        feedback = log[-6000:]
        if tamper["tampered"]:
            feedback = (
                f"The tests {', '.join(tamper['tampered'])} were modified and have been "
                "restored; change the implementation, not the tests.\n\n" + feedback
            )
            result["ok"] = False
        return {**result, "feedback": feedback, "tampered": tamper["tampered"]}
