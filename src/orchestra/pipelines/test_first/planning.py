"""Plan: the chief architect's approach, parts and tests, stored with the run."""

from __future__ import annotations

from orchestra.pipelines.plan import Plan, parse_plan
from orchestra.pipelines.test_first.steps import (
    ARCHITECT,
    PipelineSteps,
    RunFailed,
)
from orchestra.tools.workspace import git


class PlanningPhase(PipelineSteps):
    """Plan: the chief architect's approach, parts and tests, stored with the run."""

    def plan(self) -> Plan:
        self.phase("plan")
        self.clock.mark("plan", "start")
        feedback = ""
        for attempt in range(1, 3):

            def build(feedback: str = feedback) -> str:
                listing = git(self.workspace().root, "ls-files")
                readme = self.files_block(["README.md"]) if "README.md" in listing else ""
                text = self.brief() + f"\n## Repository files\n{listing}\n{readme}\n"
                text += (
                    "\nCall `finish` with a `plan`: approach, parts (each with the files it "
                    "owns; parts must not share files), tests, test_files, acceptance_criteria."
                )
                if feedback:
                    text += f"\n\n## Your previous plan was rejected\n{feedback}"
                return text

            message = self.prepared(f"plan-{attempt}", build)
            [outcome] = self.agents(
                [self.task(f"plan-{attempt}", "plan", ARCHITECT, message, allowed_writes=[])]
            )
            plan, problem = parse_plan(outcome.result.get("plan"))
            if plan is not None:
                break
            feedback = problem
        else:
            raise RunFailed(f"plan gate: no valid plan after 2 attempts ({feedback})")
        self.svc.artifacts.put_json(self.run_id, "plan.json", plan.model_dump(), "plan")
        self.svc.artifacts.put_text(self.run_id, "plan.md", plan.markdown(), "plan")
        self.store_knowledge(
            "plan", f"Plan for '{self.run.task}':\n{plan.markdown()}", "decision", ARCHITECT
        )
        self.record["plan"] = plan.model_dump()
        self.record["summaries"] = [f"plan ({outcome.agent}): {outcome.summary[:300]}"]
        self.clock.mark("plan", "end")
        return plan
