"""The built-in pipelines, as the composition root hands them to the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestra.pipelines import test_first

if TYPE_CHECKING:
    from orchestra.engine import PipelineRegistry


def builtin_pipelines() -> PipelineRegistry:
    """A registry holding every built-in pipeline, the default (test-first) first."""
    from orchestra.engine import PipelineRegistry

    registry = PipelineRegistry()
    test_first.register(registry)
    return registry
