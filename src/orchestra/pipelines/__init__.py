"""Pipelines: the test-first pipeline (preflight, plan, red, green, review, finish).

Each pipeline registers itself with an engine's registry (``register(registry)``);
:func:`builtin_pipelines` is what the composition root (:mod:`orchestra.app`) hands the
engine.
"""

from orchestra.pipelines.builtin import builtin_pipelines
from orchestra.pipelines.plan import Plan, PlanPart, parse_plan

__all__ = ["Plan", "PlanPart", "builtin_pipelines", "parse_plan"]
