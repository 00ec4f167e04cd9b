"""The experiment's report, in JSON (for scripts and the rollout's exit criteria) and
Markdown (for people)."""

from __future__ import annotations

from typing import Any

from orchestra.experiments.analysis import POWER_FORMULA, analyse
from orchestra.experiments.measure import RunMeasurement
from orchestra.experiments.spec import ExperimentSpec


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def arm_summary(runs: list[RunMeasurement]) -> dict[str, Any]:
    """One arm's runs in figures; ``None`` where no run measured it (unknown, not 0)."""
    costs = [m.cost_usd for m in runs if m.cost_usd is not None]
    latencies = [v for m in runs for v in m.latencies_ms]
    return {
        "runs": len(runs),
        "passed": sum(1 for m in runs if m.passed),
        "pass_rate": sum(1 for m in runs if m.passed) / len(runs) if runs else None,
        "cost_usd": sum(costs) if costs else None,
        "cost_usd_per_run": _mean(costs),
        "model_calls": len(latencies),
        "model_latency_ms_mean": _mean(latencies),
        "wall_time_s_mean": _mean([m.wall_time_s for m in runs if m.wall_time_s is not None]),
        "coverage_mean": _mean([m.coverage for m in runs if m.coverage is not None]),
    }


def experiment_report(
    spec: ExperimentSpec, runs: list[RunMeasurement], *, not_run: int = 0
) -> dict[str, Any]:
    """The report's data: the design, the runs per arm and each comparison's decision."""
    comparisons = analyse(spec, runs)
    return {
        "experiment": spec.name,
        "baseline": spec.baseline_arm,
        "arms": [a.name for a in spec.arms],
        "replicates": spec.replicates,
        "runs": {a.name: sum(1 for m in runs if m.arm == a.name) for a in spec.arms},
        "per_arm": {a.name: arm_summary([m for m in runs if m.arm == a.name]) for a in spec.arms},
        "not_run": not_run,
        "spent_usd": sum(m.cost_usd or 0.0 for m in runs),
        "budget_usd": spec.budget_usd,
        "comparisons": [c.to_dict() for c in comparisons],
        "decisions": {c.candidate: c.decision for c in comparisons},
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "unknown" if value is None else f"{value:.{digits}f}"


def _comparison_md(c: dict[str, Any]) -> list[str]:
    lines = [
        f"## {c['candidate']} against {c['baseline']}: **{c['decision']}**",
        "",
        f"{c['pairs']} pairs over {c['tasks']} tasks; pass rate "
        + ", ".join(f"{arm} {rate:.3f}" for arm, rate in c["pass_rates"].items())
        + ".",
        "",
        "| metric | mean difference (candidate - baseline) | interval | pairs |",
        "| --- | --- | --- | --- |",
    ]
    for metric, diff in c["differences"].items():
        if diff is None:
            lines.append(f"| {metric} | not measured | | 0 |")
            continue
        lines.append(
            f"| {metric} | {diff['mean']:+.4g} | [{diff['low']:+.4g}, {diff['high']:+.4g}] "
            f"({diff['confidence']:.0%}) | {diff['pairs']} |"
        )
    m = c["mcnemar"]
    lines += [
        "",
        f"McNemar exact test: baseline only passed {m['baseline_only']}, candidate only "
        f"passed {m['candidate_only']}, p = {m['p_value']:.4g}.",
        "",
        "| gate | status | measured | threshold |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {g['name']} | {g['status']} | {_fmt(g['measured'])} | {g['threshold']} |"
        for g in c["gates"]
    ]
    lines += [
        "",
        f"Pairs needed: {c['pairs_needed']} ({POWER_FORMULA}).",
        "",
        "Why: " + "; ".join(c["reasons"]) + ".",
        "",
    ]
    return lines


def _arms_md(per_arm: dict[str, Any]) -> list[str]:
    if not per_arm:
        return []
    lines = [
        "| arm | runs | pass rate | cost | mean model latency (ms) | mean coverage |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for arm, s in per_arm.items():
        cost = "unknown" if s["cost_usd"] is None else f"${s['cost_usd']:.4f}"
        lines.append(
            f"| {arm} | {s['runs']} | {_fmt(s['pass_rate'])} | {cost} "
            f"| {_fmt(s['model_latency_ms_mean'], 1)} | {_fmt(s['coverage_mean'])} |"
        )
    return [*lines, ""]


def render_markdown(data: dict[str, Any]) -> str:
    """The report as Markdown."""
    budget = "no budget" if data["budget_usd"] is None else f"budget ${data['budget_usd']:.2f}"
    lines = [
        f"# Experiment {data['experiment']}",
        "",
        f"Baseline: {data['baseline']}. Arms: {', '.join(data['arms'])}. "
        f"k = {data['replicates']}. Runs: "
        + ", ".join(f"{arm} {n}" for arm, n in data["runs"].items())
        + f". Spent ${data['spent_usd']:.4f} ({budget}).",
        "",
    ]
    lines += _arms_md(data.get("per_arm") or {})
    if data["not_run"]:
        lines += [f"**{data['not_run']} runs not run** (budget spent or not started yet).", ""]
    for comparison in data["comparisons"]:
        lines += _comparison_md(comparison)
    return "\n".join(lines)
