"""The analysis of an experiment: each candidate arm against the baseline, pair by pair,
its quality gates, and a decision of ship, block or inconclusive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestra.experiments.measure import RunMeasurement
from orchestra.experiments.spec import ExperimentSpec, Gates
from orchestra.experiments.stats import (
    Interval,
    McNemar,
    mcnemar_exact,
    paired_bootstrap,
    pairs_needed,
)

Decision = Literal["ship", "block", "inconclusive"]
GateStatus = Literal["pass", "fail", "unknown"]

POWER_FORMULA = (
    "Connor (1987) for paired proportions: n = (z(1-alpha/2)*sqrt(pd) + "
    "z(power)*sqrt(pd - d^2))^2 / d^2, d = the margin, pd = the discordant share "
    "estimated as (b + c + 1) / (n + 2)"
)

_METRICS: dict[str, Callable[[RunMeasurement], float | None]] = {
    "passed": lambda m: 1.0 if m.passed else 0.0,
    "coverage": lambda m: m.coverage,
    "review_findings": lambda m: None if m.review_findings is None else float(m.review_findings),
    "security_findings": lambda m: (
        None if m.security_findings is None else float(m.security_findings)
    ),
    "cost_usd": lambda m: m.cost_usd,
    "wall_time_s": lambda m: m.wall_time_s,
    "model_latency_ms": lambda m: (
        sum(m.latencies_ms) / len(m.latencies_ms) if m.latencies_ms else None
    ),
}


@dataclass(frozen=True)
class GateResult:
    """One quality gate on the candidate's measurements."""

    name: str
    status: GateStatus
    measured: float | None
    threshold: str

    def to_dict(self) -> dict[str, Any]:
        """The gate as JSON-ready values."""
        return {
            "name": self.name,
            "status": self.status,
            "measured": self.measured,
            "threshold": self.threshold,
        }


@dataclass
class Comparison:
    """A candidate arm against the baseline."""

    candidate: str
    baseline: str
    pairs: int
    tasks: int
    pass_rates: dict[str, float]
    differences: dict[str, Interval | None]
    """Paired mean difference (candidate - baseline) per metric; ``None``: not measured."""
    mcnemar: McNemar
    gates: list[GateResult]
    pairs_needed: int
    decision: Decision
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready values."""
        return {
            "candidate": self.candidate,
            "baseline": self.baseline,
            "pairs": self.pairs,
            "tasks": self.tasks,
            "pass_rates": self.pass_rates,
            "differences": {
                k: (v.to_dict() if v is not None else None) for k, v in self.differences.items()
            },
            "mcnemar": self.mcnemar.to_dict(),
            "gates": [g.to_dict() for g in self.gates],
            "pairs_needed": self.pairs_needed,
            "power_formula": POWER_FORMULA,
            "decision": self.decision,
            "reasons": self.reasons,
        }


def _pairs(
    runs: list[RunMeasurement], baseline: str, candidate: str
) -> list[tuple[RunMeasurement, RunMeasurement]]:
    by_key = {(m.task, m.arm, m.replicate): m for m in runs}
    return [
        (by_key[(m.task, baseline, m.replicate)], m)
        for m in sorted(runs, key=lambda m: (m.task, m.replicate))
        if m.arm == candidate and (m.task, baseline, m.replicate) in by_key
    ]


def _difference(
    pairs: list[tuple[RunMeasurement, RunMeasurement]],
    metric: Callable[[RunMeasurement], float | None],
    spec: ExperimentSpec,
) -> Interval | None:
    tasks: list[str] = []
    diffs: list[float] = []
    for base, cand in pairs:
        x, y = metric(base), metric(cand)
        if x is not None and y is not None:
            tasks.append(cand.task)
            diffs.append(y - x)
    if not diffs:
        return None
    rule = spec.decision
    return paired_bootstrap(
        tasks, diffs, confidence=rule.confidence, resamples=rule.resamples, seed=rule.seed
    )


def _status(value: float | None, ok: Callable[[float], bool]) -> GateStatus:
    if value is None:
        return "unknown"
    return "pass" if ok(value) else "fail"


def _latency_gate(gates: Gates, cand: list[RunMeasurement], bound: float) -> GateResult:
    latencies = [v / 1000 for m in cand for v in m.latencies_ms]
    share = sum(1 for v in latencies if v < bound) / len(latencies) if latencies else None
    return GateResult(
        "response_time",
        _status(share, lambda v: v >= gates.latency_share),
        share,
        f"share of model calls under {bound:g} s >= {gates.latency_share:g}",
    )


def _coverage_gate(cand: list[RunMeasurement], bound: float) -> GateResult:
    covs = [m.coverage for m in cand if m.coverage is not None]
    mean = sum(covs) / len(covs) if covs else None
    wanted = f"mean changed-line coverage >= {bound:g}"
    return GateResult("coverage", _status(mean, lambda v: v >= bound), mean, wanted)


def _bug_rate_gate(
    margin: float, base: list[RunMeasurement], cand: list[RunMeasurement]
) -> GateResult:
    threshold = f"failure rate on hidden tests <= baseline's x {1 + margin:g}"
    if not base or not cand:
        return GateResult("bug_rate", "unknown", None, threshold)
    base_rate = sum(1 for m in base if not m.passed) / len(base)
    cand_rate = sum(1 for m in cand if not m.passed) / len(cand)
    status: GateStatus = "pass" if cand_rate <= base_rate * (1 + margin) else "fail"
    return GateResult("bug_rate", status, cand_rate, f"{threshold} ({base_rate:.3f})")


def evaluate_gates(
    gates: Gates, base: list[RunMeasurement], cand: list[RunMeasurement]
) -> list[GateResult]:
    """The configured gates on the candidate's runs (the bug rate against the baseline's)."""
    out: list[GateResult] = []
    if gates.latency_s is not None:
        out.append(_latency_gate(gates, cand, gates.latency_s))
    if gates.coverage_min is not None:
        out.append(_coverage_gate(cand, gates.coverage_min))
    if gates.bug_rate_margin is not None:
        out.append(_bug_rate_gate(gates.bug_rate_margin, base, cand))
    if gates.satisfaction_min is not None:
        bound = gates.satisfaction_min
        value = gates.satisfaction
        wanted = f"survey satisfaction > {bound:g}"
        out.append(GateResult("satisfaction", _status(value, lambda v: v > bound), value, wanted))
    return out


def _decide(
    passed: Interval, gates: list[GateResult], pairs: int, needed: int, margin: float
) -> tuple[Decision, list[str]]:
    """Block on evidence only: a pass-rate interval wholly below ``-margin``, or a gate
    failing on at least the pairs needed. Ship when the interval clears ``-margin`` on
    enough pairs with every gate passing. Anything else is inconclusive."""
    failed = [g.name for g in gates if g.status == "fail"]
    unknown = [g.name for g in gates if g.status == "unknown"]
    interval = f"[{passed.low:.3f}, {passed.high:.3f}]"
    if passed.high < -margin:
        return "block", [f"pass rate lower by more than {margin:g}: interval {interval}"]
    if failed and pairs >= needed:
        return "block", [f"gate failed: {name}" for name in failed]
    reasons = [f"gate failed on {pairs} pairs, fewer than {needed}: {n}" for n in failed]
    if passed.low < -margin:
        reasons.append(f"the interval {interval} includes a drop of more than {margin:g}")
    if pairs < needed:
        reasons.append(f"{pairs} pairs measured, {needed} needed")
    reasons += [f"gate unknown: {name}" for name in unknown]
    return ("inconclusive", reasons) if reasons else ("ship", ["every check met"])


def compare(spec: ExperimentSpec, runs: list[RunMeasurement], candidate: str) -> Comparison:
    """``candidate`` against the spec's baseline over the pairs both have run."""
    baseline = spec.baseline_arm
    pairs = _pairs(runs, baseline, candidate)
    base = [b for b, _ in pairs]
    cand = [c for _, c in pairs]
    differences = {name: _difference(pairs, fn, spec) for name, fn in _METRICS.items()}
    rule = spec.decision
    test = mcnemar_exact([b.passed for b in base], [c.passed for c in cand])
    needed = pairs_needed(
        test.baseline_only + test.candidate_only,
        len(pairs),
        effect=rule.margin,
        alpha=rule.alpha,
        power=rule.power,
    )
    gates = evaluate_gates(spec.gates, base, cand)
    passed = differences["passed"]
    if passed is None:
        decision: Decision = "inconclusive"
        reasons = ["no pair measured"]
    else:
        decision, reasons = _decide(passed, gates, len(pairs), needed, rule.margin)
    rates = {
        baseline: sum(b.passed for b in base) / len(base) if base else 0.0,
        candidate: sum(c.passed for c in cand) / len(cand) if cand else 0.0,
    }
    return Comparison(
        candidate=candidate,
        baseline=baseline,
        pairs=len(pairs),
        tasks=len({c.task for c in cand}),
        pass_rates=rates,
        differences=differences,
        mcnemar=test,
        gates=gates,
        pairs_needed=needed,
        decision=decision,
        reasons=reasons,
    )


def analyse(spec: ExperimentSpec, runs: list[RunMeasurement]) -> list[Comparison]:
    """Every candidate arm against the baseline."""
    return [compare(spec, runs, arm.name) for arm in spec.arms if arm.name != spec.baseline_arm]
