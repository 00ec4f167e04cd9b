"""Green: implementers, one per part, until the new and existing tests pass."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from orchestra.engine import checkpoint
from orchestra.pipelines.plan import Plan, PlanPart
from orchestra.pipelines.test_first.state import GreenResult
from orchestra.pipelines.test_first.steps import RunFailed, TestFirstRun
from orchestra.pipelines.text import commit_subject
from orchestra.tools import git


def implementers(run: TestFirstRun, plan: Plan) -> list[tuple[str, PlanPart]]:
    """The agent for each part of the plan (picked by the part's files)."""
    agents = run.svc.agents_for(run.run_id)
    return [(agents.pick_for_files(part.files), part) for part in plan.parts]


def green_phase(run: TestFirstRun) -> None:
    """Implementation rounds until the green gate passes; commits the implementation."""
    state = run.state
    plan, tests = state.require_plan(), state.tests
    run.phase("green")
    run.mark("green", "start")
    feedback = ""
    iterations = run.svc.config.engine.green_iterations
    if state.red is None:
        raise RuntimeError("the red phase has not run")  # a phase order bug
    red_log = run.svc.artifacts.get_text(run.run_id, state.red.log)
    for iteration in range(1, iterations + 1):
        tasks = []
        for agent, part in implementers(run, plan):

            def build(part: PlanPart = part, feedback: str = feedback) -> str:
                text = run.brief(plan, state.summaries)
                text += f"\n## Your part: {part.name}\n{part.description}\n"
                text += "\n## The tests to make pass (do not change them)\n"
                text += run.files_block(tests)
                text += "\n\n## Your files\n" + run.files_block(part.files)
                if feedback:
                    text += f"\n\n## Test output after the last round\n{feedback}"
                else:
                    text += f"\n\n## The failing test output\n{red_log[-4000:]}"
                return text

            step = f"green-{iteration}-{part.name}"
            tasks.append(run.part_task(step, "green", agent, part, build, tests))
        run.agents(tasks)
        outcome = green_gate(run, f"green-{iteration}", tests)
        if outcome.ok:
            outcome.iterations = iteration
            state.green = outcome
            files = [f for part in plan.parts for f in part.files]
            run.commit("implementation", commit_subject("feat: ", run.row.task), files)
            state.summaries.append(f"green: all tests pass after {iteration} round(s)")
            run.mark("green", "end")
            return
        feedback = outcome.feedback
    raise RunFailed(f"green gate: tests still failing after {iterations} implementation rounds")


def green_gate(run: TestFirstRun, name: str, protected: list[str]) -> GreenResult:
    """Every test passes, and the protected tests are as committed (restored if not)."""

    def check() -> dict[str, Any]:
        ws = run.workspace()
        now = ws.file_hashes(protected)
        changed = [p for p, h in now.items() if h != run.state.test_hashes.get(p)]
        if changed:
            # The committed tests are the contract: put them back and say so.
            git(ws.root, "checkout", "HEAD", "--", *changed)
        return {"tampered": changed}

    tamper = checkpoint(f"hash:{name}", check)
    result = run.test_run(name)
    log = run.svc.artifacts.get_text(run.run_id, result.log)
    feedback = log[-6000:]
    ok = result.ok
    if tamper["tampered"]:
        feedback = (
            f"The tests {', '.join(tamper['tampered'])} were modified and have been "
            "restored; change the implementation, not the tests.\n\n" + feedback
        )
        ok = False
    return GreenResult(
        **{**asdict(result), "ok": ok}, feedback=feedback, tampered=tamper["tampered"]
    )
