"""Pipelines: the test-first pipeline (plan, red, green, review, finish) and its gates."""

from orchestra.pipelines.gates import GateVerdict, judge_red
from orchestra.pipelines.plan import Plan, PlanPart, parse_plan

__all__ = ["GateVerdict", "Plan", "PlanPart", "judge_red", "parse_plan"]
