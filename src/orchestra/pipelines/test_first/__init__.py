"""The test-first pipeline: plan -> red -> green -> review (parallel) -> finish.

Every phase is durable: agents are child workflows, gates and commits are DBOS steps.
Code between steps only reads recorded outputs, so replaying it after a crash is safe.
One module per phase (:mod:`.planning`, :mod:`.red`, :mod:`.green`, :mod:`.review`), each
a class extending the previous one over the shared building blocks in :mod:`.steps`.
"""

from __future__ import annotations

from typing import Any

from orchestra.engine import (
    EngineServices,
    PipelineDefinition,
    PipelineRegistry,
    checkpoint,
    pipeline_workflow,
)
from orchestra.pipelines.report import build_report, changed_line_coverage
from orchestra.pipelines.test_first.review import ReviewPhase
from orchestra.pipelines.test_first.steps import PhaseClock, PipelineSteps, RunFailed

__all__ = [
    "PIPELINE",
    "PhaseClock",
    "PipelineSteps",
    "RunFailed",
    "TestFirstPipeline",
    "register",
    "test_first_workflow",
]


class TestFirstPipeline(ReviewPhase):
    """One run of the pipeline inside its workflow."""

    def finish(self, status: str, reason: str | None) -> dict[str, Any]:
        self.phase("finish")

        def coverage() -> dict[str, Any]:
            if status != "succeeded":
                return {"status": "not measured (run did not reach green)"}
            return changed_line_coverage(self.toolbox(), self.workspace())

        self.record["coverage"] = checkpoint("coverage", coverage)

        def write() -> str:
            report = build_report(
                self.svc, self.run_id, status, reason, self.record, self.clock.phases
            )
            return report

        report_path = checkpoint("report", write)
        self.svc.runs.update(
            self.run_id,
            status=status,
            failure_reason=reason,
            report_path=report_path,
            finished_at=self.svc.runs.clock(),
            phase="done",
        )
        return {"status": status, "reason": reason, "report": report_path}

    def execute(self) -> dict[str, Any]:
        self.prepare()
        try:
            plan = self.plan()
            tests = self.red(plan)
            self.green(plan, tests)
            self.review(plan, tests)
        except RunFailed as exc:
            return self.finish("failed", str(exc))
        return self.finish("succeeded", None)


@pipeline_workflow("orchestra.test_first")
def test_first_workflow(svc: EngineServices, run_id: str) -> dict[str, Any]:
    """The durable test-first pipeline for one run."""
    return TestFirstPipeline(svc, run_id).execute()


PIPELINE = PipelineDefinition(
    name="test-first",
    workflow=test_first_workflow,
    state_type=dict,
    description="plan -> red -> green -> review (parallel) -> finish",
)
"""The test-first pipeline as the engine sees it."""


def register(registry: PipelineRegistry) -> None:
    """Hand the test-first pipeline to an engine's registry."""
    registry.add(PIPELINE)
