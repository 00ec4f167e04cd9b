"""Experiments: task suites from git history, paired experiments between configurations
with statistics and quality gates, and rollout phases with exit criteria.

Above the engine and the pipelines (it drives runs), below the composition root and the
CLI (which hand it the engines it runs on). See ``docs/experiments.md``.
"""

import importlib
import typing

from orchestra.experiments.acceptance import Acceptance, checkout_base, judge, reference_passing
from orchestra.experiments.analysis import (
    POWER_FORMULA,
    Comparison,
    GateResult,
    analyse,
    compare,
    evaluate_gates,
)
from orchestra.experiments.errors import BudgetSpent, ExperimentError, SuiteInvalid
from orchestra.experiments.measure import RunMeasurement
from orchestra.experiments.recorded import RecordedExperiment, load_recorded, results_path
from orchestra.experiments.report import arm_summary, experiment_report, render_markdown
from orchestra.experiments.rollout import (
    CriterionCheck,
    MetricSource,
    PhaseStatus,
    check_criterion,
    kpi_metric_source,
    render_rollout,
    rollout_status,
)
from orchestra.experiments.runner import (
    ArmOpener,
    ArmSession,
    ExperimentOutcome,
    append_result,
    read_results,
    run_experiment,
    run_single,
)
from orchestra.experiments.spec import Arm, DecisionRule, ExperimentSpec, Gates, arm_config
from orchestra.experiments.stats import (
    Interval,
    McNemar,
    mcnemar_exact,
    paired_bootstrap,
    pairs_needed,
)
from orchestra.experiments.suite import Suite, Task, read_task, suite_from_git

if typing.TYPE_CHECKING:
    from orchestra.experiments.durable import (
        DurableOutcome,
        ExperimentHost,
        bind_runner,
        experiment_host,
        experiment_plan,
        list_experiments,
        resume_experiment,
        start_experiment,
        unfinished_experiment,
    )

_EXPORTS = {
    name: "orchestra.experiments.durable"
    for name in (
        "DurableOutcome",
        "ExperimentHost",
        "bind_runner",
        "experiment_host",
        "experiment_plan",
        "list_experiments",
        "resume_experiment",
        "start_experiment",
        "unfinished_experiment",
    )
}
"""Loaded on first use: the durable runner loads the engine and DBOS, which the dashboard's
experiment pages (reading recorded results) and ``orchestra gateway`` must not pay for."""


def __getattr__(name: str) -> typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "POWER_FORMULA",
    "Acceptance",
    "Arm",
    "ArmOpener",
    "ArmSession",
    "BudgetSpent",
    "Comparison",
    "CriterionCheck",
    "DecisionRule",
    "DurableOutcome",
    "ExperimentError",
    "ExperimentHost",
    "ExperimentOutcome",
    "ExperimentSpec",
    "GateResult",
    "Gates",
    "Interval",
    "McNemar",
    "MetricSource",
    "PhaseStatus",
    "RecordedExperiment",
    "RunMeasurement",
    "Suite",
    "SuiteInvalid",
    "Task",
    "analyse",
    "append_result",
    "arm_config",
    "arm_summary",
    "bind_runner",
    "check_criterion",
    "checkout_base",
    "compare",
    "evaluate_gates",
    "experiment_host",
    "experiment_plan",
    "experiment_report",
    "judge",
    "kpi_metric_source",
    "list_experiments",
    "load_recorded",
    "mcnemar_exact",
    "paired_bootstrap",
    "pairs_needed",
    "read_results",
    "read_task",
    "reference_passing",
    "render_markdown",
    "render_rollout",
    "results_path",
    "resume_experiment",
    "rollout_status",
    "run_experiment",
    "run_single",
    "start_experiment",
    "suite_from_git",
    "unfinished_experiment",
]
