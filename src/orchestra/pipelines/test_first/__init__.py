"""The test-first pipeline: plan -> red -> green -> review (parallel) -> finish.

Every phase is durable: agents are child workflows, gates and commits are DBOS steps.
Code between steps only reads recorded outputs, so replaying it after a crash is safe.
Phases are functions over one :class:`TestFirstRun` (the engine's services, the durable
building blocks of :mod:`.steps` and the typed :class:`TestFirstState` of :mod:`.state`);
each reads what the earlier ones left in the state and adds its own part. One module per
phase: :mod:`.preflight`, :mod:`.planning`, :mod:`.red`, :mod:`.green`, :mod:`.review`,
:mod:`.finish`.
"""

from orchestra.pipelines.test_first.pipeline import (
    PHASES,
    PIPELINE,
    execute,
    register,
    test_first_workflow,
)
from orchestra.pipelines.test_first.rendering import counts_text, render_markdown, summary_line
from orchestra.pipelines.test_first.state import TestFirstState
from orchestra.pipelines.test_first.steps import Phase, RunFailed, TestFirstRun

__all__ = [
    "PHASES",
    "PIPELINE",
    "Phase",
    "RunFailed",
    "TestFirstRun",
    "TestFirstState",
    "counts_text",
    "execute",
    "register",
    "render_markdown",
    "summary_line",
    "test_first_workflow",
]
