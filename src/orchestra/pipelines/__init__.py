"""Pipelines: the test-first pipeline (preflight, plan, red, green, review, finish).

Each pipeline registers itself with an engine's registry (``register(registry)``);
:func:`builtin_pipelines` is what the composition root hands the engine.
"""

from orchestra.engine import PipelineRegistry
from orchestra.pipelines import test_first
from orchestra.pipelines.plan import Plan, PlanPart, parse_plan


def builtin_pipelines() -> PipelineRegistry:
    """A registry holding every built-in pipeline, the default (test-first) first."""
    registry = PipelineRegistry()
    test_first.register(registry)
    return registry


__all__ = ["Plan", "PlanPart", "builtin_pipelines", "parse_plan"]
