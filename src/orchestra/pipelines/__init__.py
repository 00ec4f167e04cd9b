"""Pipelines: the test-first pipeline (plan, red, green, review, finish) and its gates.

Each pipeline registers itself with an engine's registry (``register(registry)``);
:func:`builtin_pipelines` is what the composition root (:mod:`orchestra.app`) hands the
engine.
"""

from orchestra.pipelines.builtin import builtin_pipelines
from orchestra.pipelines.gates import GateVerdict, judge_red
from orchestra.pipelines.plan import Plan, PlanPart, parse_plan

__all__ = ["GateVerdict", "Plan", "PlanPart", "builtin_pipelines", "judge_red", "parse_plan"]
