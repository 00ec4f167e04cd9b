"""The test-first run's reports (Markdown and JSON) and static analysis (changed-line
coverage is measured by :func:`orchestra.repository.changed_line_coverage`)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestra.pipelines.test_first.rendering import render_markdown
from orchestra.pipelines.test_first.state import TestFirstState
from orchestra.providers import Usage
from orchestra.tools import Toolbox, run_command

if TYPE_CHECKING:
    from orchestra.engine import EngineServices


def run_bandit(toolbox: Toolbox, paths: list[str]) -> dict[str, Any]:
    """Run bandit on ``paths`` (changed Python files) and return its findings."""
    if not paths:
        return {"ran": False, "reason": "no changed Python files", "findings": []}
    result = run_command(
        [sys.executable, "-m", "bandit", "-f", "json", "-q", *paths],
        cwd=toolbox.workspace.root,
        home=toolbox.home,
        limits=toolbox.limits,
    )
    try:
        data = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        return {"ran": False, "reason": result.combined(2000), "findings": []}
    findings = [
        {
            "severity": item.get("issue_severity", "").lower(),
            "confidence": item.get("issue_confidence", "").lower(),
            "file": item.get("filename"),
            "line": item.get("line_number"),
            "test": item.get("test_id"),
            "finding": item.get("issue_text"),
        }
        for item in data.get("results", [])
    ]
    return {"ran": True, "files": paths, "findings": findings}


def _costs(svc: EngineServices, run_id: str, steps: list[Any]) -> tuple[dict[str, float], str]:
    """Cost per step: the gateway ledger when reachable, else the price table, else none."""
    if svc.cost_source is not None:
        try:
            costs = svc.cost_source.costs_for_run(run_id)
            if costs:
                return {str(k): float(v) for k, v in costs.items()}, "gateway ledger"
        except Exception as exc:  # the ledger is optional for the report
            return {}, f"unknown (ledger query failed: {exc})"
    try:
        from orchestra.accounting import PriceTable  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return {}, "unknown (no ledger and no price table available)"
    table = PriceTable.load(None)
    out: dict[str, float] = {}
    for step in steps:
        usage = Usage(
            step.input_tokens, step.output_tokens, step.cache_read_tokens, step.cache_write_tokens
        )
        try:
            out[step.step] = float(table.cost(step.model or "", usage))
        except Exception:  # noqa: S112 - an unpriced model is unknown, not $0
            continue
    return out, "computed from usage with the price table"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def build_report(
    svc: EngineServices,
    run_id: str,
    status: str,
    reason: str | None,
    state: TestFirstState,
) -> str:
    """Write ``report.json`` and ``report.md`` for the run; returns the Markdown path."""
    run = svc.runs.get(run_id)
    steps = svc.runs.steps(run_id)
    costs, cost_source = _costs(svc, run_id, steps)
    agents = [
        {
            "step": s.step,
            "phase": s.phase,
            "agent": s.agent,
            "status": s.status,
            "model": s.model,
            "model_calls": s.model_calls,
            "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens,
            "cache_read_tokens": s.cache_read_tokens,
            "cache_write_tokens": s.cache_write_tokens,
            "cost_usd": costs.get(s.step),
            "started_at": _iso(s.started_at),
            "finished_at": _iso(s.finished_at),
        }
        for s in steps
    ]
    tokens_by_phase: dict[str, dict[str, int]] = {}
    for a in agents:
        bucket = tokens_by_phase.setdefault(str(a["phase"]), {"input": 0, "output": 0, "calls": 0})
        bucket["input"] += int(a["input_tokens"] or 0) + int(a["cache_read_tokens"] or 0)
        bucket["output"] += int(a["output_tokens"] or 0)
        bucket["calls"] += int(a["model_calls"] or 0)
    phase_rows = {
        name: {
            "start": span.get("start"),
            "end": span.get("end"),
            "duration_s": round(span["end"] - span["start"], 3)
            if "end" in span and "start" in span
            else None,
        }
        for name, span in state.phases.items()
    }
    total_cost = sum(v for v in costs.values()) if costs else None
    if total_cost is None and not any(s.model_calls for s in steps):
        # Nothing was called (e.g. a run stopped in preflight): that cost is known.
        total_cost, cost_source = 0.0, "no model call was made"
    data = {
        "run_id": run.id,
        "task": run.task,
        "status": status,
        "failure_reason": reason,
        "repository": run.repo_path,
        "branch": run.branch,
        "base_commit": run.base_commit,
        "commits": [asdict(c) for c in state.commits],
        "phases": phase_rows,
        "agents": agents,
        "tokens_by_phase": tokens_by_phase,
        "cost_usd": total_cost,
        "cost_source": cost_source,
        "tests": {
            "red": state.red.counts if state.red is not None else None,
            "red_rejections": list(state.red_rejections),
            "green": {
                "passed": state.green.passed,
                "failed": state.green.failed,
                "error": state.green.error,
                "iterations": state.green.iterations,
            }
            if state.green is not None
            else None,
        },
        "coverage": state.coverage,
        "security": state.bandit,
        "review": {k: asdict(v) for k, v in state.review.items()} if state.review else None,
        "blocking_findings": list(state.blocking),
        "fixes": asdict(state.fixes) if state.fixes is not None else None,
        "plan": state.plan.model_dump() if state.plan is not None else None,
        "warnings": list(state.warnings),
    }
    svc.artifacts.put_json(run_id, "report.json", data, "report")
    svc.artifacts.put_text(run_id, "report.md", render_markdown(data), "report")
    return str(svc.artifacts.run_dir(run_id) / "report.md")
