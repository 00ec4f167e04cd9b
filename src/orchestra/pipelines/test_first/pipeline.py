"""The test-first pipeline as the engine sees it: phases in order, the DBOS workflow,
the definition and its registration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestra.engine import (
    EngineServices,
    PipelineDefinition,
    PipelineRegistry,
    pipeline_workflow,
)
from orchestra.pipelines.test_first.finish import finish
from orchestra.pipelines.test_first.green import green_phase
from orchestra.pipelines.test_first.planning import plan_phase
from orchestra.pipelines.test_first.preflight import preflight_phase
from orchestra.pipelines.test_first.red import red_phase
from orchestra.pipelines.test_first.review import review_phase
from orchestra.pipelines.test_first.state import TestFirstState
from orchestra.pipelines.test_first.steps import Phase, RunFailed, TestFirstRun, prepare_workspace

PHASES: Sequence[Phase] = (
    prepare_workspace,
    preflight_phase,
    plan_phase,
    red_phase,
    green_phase,
    review_phase,
)
"""The phases in order; ``finish`` follows, whether they succeeded or a gate failed."""


def execute(run: TestFirstRun, phases: Sequence[Phase] = PHASES) -> dict[str, Any]:
    """Run ``phases`` in order, then finish: succeeded, or failed with the gate's reason."""
    try:
        for phase in phases:
            phase(run)
    except RunFailed as exc:
        return finish(run, "failed", str(exc))
    return finish(run, "succeeded", None)


@pipeline_workflow("orchestra.test_first")
def test_first_workflow(svc: EngineServices, run_id: str) -> dict[str, Any]:
    """The durable test-first pipeline for one run."""
    return execute(TestFirstRun(svc, run_id))


PIPELINE = PipelineDefinition(
    name="test-first",
    workflow=test_first_workflow,
    state_type=TestFirstState,
    description="preflight -> plan -> red -> green -> review (parallel) -> finish",
)
"""The test-first pipeline as the engine sees it."""


def register(registry: PipelineRegistry) -> None:
    """Hand the test-first pipeline to an engine's registry."""
    registry.add(PIPELINE)
