"""The experiments pages: the recorded experiments (``rollout.experiment_files``) and one
experiment's arms, paired differences with their bootstrap intervals, McNemar's test, the
gates, the decision and its runs.

Every figure is the report ``orchestra experiment report`` writes, read through
:func:`orchestra.experiments.load_recorded`; nothing is recomputed here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestra.errors import ApiError, OrchestraError
from orchestra.experiments import ExperimentSpec, RecordedExperiment, load_recorded
from orchestra.server.dashboard.charts import IntervalRow, interval_chart
from orchestra.server.dashboard.context import BadQuery, PageContext, link, segment
from orchestra.server.dashboard.render import Cell, Page, Table

METRICS = {
    "passed": "pass rate",
    "coverage": "coverage",
    "review_findings": "review findings",
    "security_findings": "security findings",
    "cost_usd": "cost ($)",
    "wall_time_s": "wall time (s)",
    "model_latency_ms": "model latency (ms)",
}
"""The report's paired metrics, as the page names them."""


class UnknownExperiment(ApiError):
    """No configured experiment file holds an experiment of that name."""

    status = 404


def _files(ctx: PageContext) -> list[tuple[str, Path]]:
    """Each configured file as configured (what the pages show: no server path) and found."""
    base = ctx.api.base_dir or Path.cwd()
    return [(f, base / f) for f in ctx.api.current_config.rollout.experiment_files]


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.4f}"


def _decision(report: dict[str, Any]) -> str:
    decisions = report["decisions"]
    return ", ".join(f"{arm}: {d}" for arm, d in decisions.items()) or "unknown"


def experiments(ctx: PageContext) -> Page:
    """Every configured experiment: status, arms, runs recorded of planned, spend, decision."""
    table = Table(
        "experiments",
        "Recorded experiments",
        (
            "Experiment",
            "Status",
            "Arms",
            "Runs recorded",
            "Runs planned",
            "Spent",
            "Budget",
            "Decision",
            "File",
        ),
    )
    for shown, path in _files(ctx):
        try:
            rec = load_recorded(path)
        except OrchestraError as exc:
            why = exc.message.replace(str(path.parent), ".")
            table.add(path.stem, f"unreadable: {why}", "", None, None, None, None, "", shown)
            continue
        report = rec.report
        table.add(
            Cell(rec.spec.name, link(f"/experiments/{segment(rec.spec.name)}"), rec.spec.name),
            rec.status,
            ", ".join(report["arms"]),
            rec.recorded,
            rec.planned,
            Cell(_money(report["spent_usd"]), value=report["spent_usd"]),
            Cell(_money(report["budget_usd"]), value=report["budget_usd"]),
            _decision(report),
            shown,
        )
    page = Page("Experiments", "experiments", tables=[table])
    if not table.rows:
        page.notes.append(
            "No experiment is configured: list experiment files under "
            "rollout.experiment_files in orchestra.yaml."
        )
    page.notes.append(
        "Status comes from the results file; `orchestra experiment list` shows each "
        "workflow's own state (pending, error)."
    )
    return page


def _find(ctx: PageContext, name: str) -> tuple[str, RecordedExperiment]:
    for shown, path in _files(ctx):
        try:
            spec = ExperimentSpec.load(path)
        except OrchestraError:
            continue
        if spec.name == name:
            return shown, load_recorded(path)
    raise UnknownExperiment(
        f"no experiment {name!r} is configured", hint="see /dashboard/experiments"
    )


def _arms_table(rec: RecordedExperiment, name: str) -> Table:
    table = Table(
        "arms",
        "Arms: each one's runs in figures",
        (
            "Arm",
            "Description",
            "Runs",
            "Passed",
            "Pass rate",
            "Cost",
            "Cost per run",
            "Model calls",
            "Mean model latency (ms)",
            "Mean wall time (s)",
            "Mean coverage",
        ),
    )
    for arm in rec.spec.arms:
        s = rec.report["per_arm"][arm.name]
        role = " (baseline)" if arm.name == rec.spec.baseline_arm else ""
        table.add(
            Cell(
                arm.name + role,
                link(f"/experiments/{segment(name)}", arm=arm.name) + "#t-runs",
                arm.name,
            ),
            arm.description,
            s["runs"],
            s["passed"],
            s["pass_rate"],
            Cell(_money(s["cost_usd"]), value=s["cost_usd"]),
            Cell(_money(s["cost_usd_per_run"]), value=s["cost_usd_per_run"]),
            s["model_calls"],
            s["model_latency_ms_mean"],
            s["wall_time_s_mean"],
            s["coverage_mean"],
        )
    return table


def _comparison_section(c: dict[str, Any], margin: float) -> dict[str, Any]:
    rows = []
    for metric, label in METRICS.items():
        d = c["differences"].get(metric)
        mark = -margin if metric == "passed" else None
        if d is None:
            rows.append(IntervalRow(label, None))
        else:
            rows.append(IntervalRow(label, d["mean"], d["low"], d["high"], mark))
    title = f"{c['candidate']} minus {c['baseline']}: paired mean differences"
    m = c["mcnemar"]
    return {
        "heading": f"{c['candidate']} against {c['baseline']}",
        "figure": c["decision"],
        "chart": interval_chart(title, rows),
        "caption": (
            f"{title}, with bootstrap intervals over {c['pairs']} pairs of {c['tasks']} tasks; "
            f"each row on its own scale, 0 on the centre line, the pass rate's -{margin:g} "
            "margin in red."
        ),
        "how": (
            f"McNemar exact p = {m['p_value']:.4g} (baseline only passed {m['baseline_only']}, "
            f"candidate only {m['candidate_only']}). Pairs needed: {c['pairs_needed']} "
            f"({c['power_formula']}). Why {c['decision']}: " + "; ".join(c["reasons"]) + "."
        ),
    }


def _tables(rec: RecordedExperiment) -> list[Table]:
    diffs = Table(
        "differences",
        "Paired differences (candidate - baseline) with bootstrap intervals",
        ("Candidate", "Metric", "Mean difference", "Low", "High", "Confidence", "Pairs"),
    )
    tests = Table(
        "decisions",
        "McNemar's exact test and the decision",
        (
            "Candidate",
            "Pairs",
            "Tasks",
            "Baseline only passed",
            "Candidate only passed",
            "McNemar p",
            "Pairs needed",
            "Decision",
            "Why",
        ),
    )
    gates = Table("gates", "Quality gates", ("Candidate", "Gate", "Status", "Measured", "Wanted"))
    for c in rec.report["comparisons"]:
        for metric, label in METRICS.items():
            d = c["differences"].get(metric) or {}
            diffs.add(
                c["candidate"],
                label,
                d.get("mean"),
                d.get("low"),
                d.get("high"),
                d.get("confidence"),
                d.get("pairs", 0),
            )
        m = c["mcnemar"]
        tests.add(
            c["candidate"],
            c["pairs"],
            c["tasks"],
            m["baseline_only"],
            m["candidate_only"],
            Cell(f"{m['p_value']:.4g}", value=m["p_value"]),
            c["pairs_needed"],
            c["decision"],
            "; ".join(c["reasons"]),
        )
        for g in c["gates"]:
            gates.add(c["candidate"], g["name"], g["status"], g["measured"], g["threshold"])
    return [diffs, tests, gates]


def _runs_table(rec: RecordedExperiment, arm: str | None) -> Table:
    caption = "Runs" + (f" of arm {arm}" if arm else "") + ", as recorded in the results file"
    table = Table(
        "runs",
        caption,
        (
            "Task",
            "Arm",
            "Replicate",
            "Run",
            "Status",
            "Hidden tests passed",
            "Coverage",
            "Review findings",
            "Security findings",
            "Cost",
            "Wall time (s)",
            "Model calls",
        ),
    )
    for m in rec.runs:
        if arm is not None and m.arm != arm:
            continue
        table.add(
            m.task,
            m.arm,
            m.replicate,
            m.run_id,
            m.status,
            "yes" if m.passed else "no",
            m.coverage,
            m.review_findings,
            m.security_findings,
            Cell(_money(m.cost_usd), value=m.cost_usd),
            m.wall_time_s,
            len(m.latencies_ms),
        )
    return table


def experiment(ctx: PageContext) -> Page:
    """One experiment: per arm, per comparison (chart, McNemar, gates, decision), its runs."""
    name = ctx.path["name"]
    shown, rec = _find(ctx, name)
    arm = ctx.param("arm")
    if arm is not None and arm not in {a.name for a in rec.spec.arms}:
        raise BadQuery(f"experiment {name} has no arm {arm!r}", hint="pick an arm from its table")
    report = rec.report
    page = Page(f"Experiment {name}", "experiments")
    page.notes.append(
        f"{rec.status}: {rec.recorded} of {rec.planned} runs recorded "
        f"({len(rec.suite.tasks)} tasks x {len(rec.spec.arms)} arms x k = {rec.spec.replicates})"
        f"; spent {_money(report['spent_usd'])} of "
        + ("no budget" if report["budget_usd"] is None else _money(report["budget_usd"]))
        + f". Baseline: {rec.spec.baseline_arm}. File: {shown}."
    )
    known = {a.name for a in rec.spec.arms}
    stray = sorted({m.arm for m in rec.runs if m.arm not in known})
    if stray:
        page.notes.append(
            "Runs of arms the experiment file no longer has (left out of the analysis): "
            + ", ".join(stray)
        )
    margin = rec.spec.decision.margin
    page.sections += [_comparison_section(c, margin) for c in report["comparisons"]]
    page.tables += [_arms_table(rec, name), *_tables(rec), _runs_table(rec, arm)]
    return page


__all__ = ["experiment", "experiments"]
