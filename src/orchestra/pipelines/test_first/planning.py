"""Plan: the chief architect's approach, parts and tests, stored with the run."""

from __future__ import annotations

from orchestra.landing import record_claims
from orchestra.pipelines.plan import Plan, parse_plan
from orchestra.pipelines.test_first.steps import ARCHITECT, RunFailed, TestFirstRun
from orchestra.tools import git


def plan_phase(run: TestFirstRun) -> None:
    """The architect's plan, validated (one retry with the errors), into ``run.state.plan``."""
    run.phase("plan")
    run.mark("plan", "start")
    feedback = ""
    for attempt in range(1, 3):

        def build(feedback: str = feedback) -> str:
            listing = git(run.workspace().root, "ls-files")
            readme = run.files_block(["README.md"]) if "README.md" in listing else ""
            text = run.brief() + f"\n## Repository files\n{listing}\n{readme}\n"
            text += (
                "\nCall `finish` with a `plan`: approach, parts (each with the files it "
                "owns; parts must not share files), tests, test_files, acceptance_criteria."
            )
            if feedback:
                text += f"\n\n## Your previous plan was rejected\n{feedback}"
            return text

        message = run.prepared(f"plan-{attempt}", build)
        [outcome] = run.agents(
            [run.task(f"plan-{attempt}", "plan", ARCHITECT, message, allowed_writes=[])]
        )
        plan, problem = parse_plan(outcome.result.get("plan"))
        if plan is not None:
            break
        # A step that ended on a mistake (malformed calls, no finish...) says which.
        feedback = problem if outcome.finished else f"{outcome.summary} ({problem})"
    else:
        raise RunFailed(f"plan gate: no valid plan after 2 attempts ({feedback})")
    run.svc.artifacts.put_json(run.run_id, "plan.json", plan.model_dump(), "plan")
    run.svc.artifacts.put_text(run.run_id, "plan.md", plan.markdown(), "plan")
    run.store_knowledge(
        "plan", f"Plan for '{run.row.task}':\n{plan.markdown()}", "decision", ARCHITECT
    )
    run.state.plan = plan
    run.state.summaries = [f"plan ({outcome.agent}): {outcome.summary[:300]}"]
    claim_files(run, plan)
    run.mark("plan", "end")


def claim_files(run: TestFirstRun, plan: Plan) -> None:
    """Record the files the plan owns; name the other unlanded runs owning some of them.

    They are not waited for: whichever lands second is rebased onto the first and tested
    again by the merge queue before main moves (``docs/merge-queue.md``).
    """
    files = [path for part in plan.parts for path in part.files] + list(plan.test_files)
    shared = record_claims(run.svc.database, run.run_id, run.row.repo_path, files)
    if shared:
        run.svc.artifacts.put_json(run.run_id, "coordination.json", shared, "plan")
        named = "; ".join(f"{other}: {', '.join(paths)}" for other, paths in shared.items())
        run.state.summaries.append(
            f"coordination: files shared with unlanded runs ({named}); the merge queue "
            "rebases and re-tests whichever lands second"
        )
