"""Pipelines: the test-first pipeline (preflight, plan, red, green, review, finish).

Each pipeline registers itself with an engine's registry (``register(registry)``);
:func:`builtin_pipelines` is what the composition root (:mod:`orchestra.app`) hands the
engine.
"""

from orchestra.pipelines.builtin import builtin_pipelines
from orchestra.pipelines.plan import Plan, PlanPart, parse_plan
from orchestra.pipelines.test_first import counts_text, summary_line
from orchestra.pipelines.text import commit_subject, markdown_block, markdown_inline, task_title

__all__ = [
    "Plan",
    "PlanPart",
    "builtin_pipelines",
    "commit_subject",
    "counts_text",
    "markdown_block",
    "markdown_inline",
    "parse_plan",
    "summary_line",
    "task_title",
]
