"""A recorded experiment as the CLI leaves it: the experiment file, its suite and its
results file, read back with the report the CLI would write (for ``orchestra experiment
report`` and the dashboard, so the two cannot disagree)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orchestra.experiments.measure import RunMeasurement
from orchestra.experiments.report import experiment_report
from orchestra.experiments.runner import read_results
from orchestra.experiments.spec import ExperimentSpec
from orchestra.experiments.suite import Suite

RecordStatus = Literal["not started", "unfinished", "stopped at budget", "complete"]


def results_path(experiment: Path, results: Path | None = None) -> Path:
    """The experiment's results file: ``results`` or ``<experiment>.results.jsonl``."""
    return results or experiment.with_suffix(".results.jsonl")


@dataclass(frozen=True)
class RecordedExperiment:
    """An experiment's design, its recorded runs and its report."""

    path: Path
    spec: ExperimentSpec
    suite: Suite
    runs: list[RunMeasurement]
    """Every line of the results file (a run of an arm the file no longer has included)."""
    planned: int
    """Tasks x arms x k."""
    report: dict[str, Any]
    """:func:`experiment_report` of the runs, as ``orchestra experiment report`` writes it."""

    @property
    def recorded(self) -> int:
        """Distinct planned runs recorded (the planned ones less those not run)."""
        return self.planned - int(self.report["not_run"])

    @property
    def status(self) -> RecordStatus:
        """What the records say: no run yet, every planned run made, the budget spent
        before that, or runs still to make (running, or stopped by a crash or a failure:
        ``orchestra experiment list`` shows the workflow's own status)."""
        if not self.recorded:
            return "not started"
        if self.recorded >= self.planned:
            return "complete"
        budget = self.spec.budget_usd
        if budget is not None and self.report["spent_usd"] >= budget:
            return "stopped at budget"
        return "unfinished"


def load_recorded(experiment: Path, results: Path | None = None) -> RecordedExperiment:
    """Read an experiment file, its suite and its results (raises ``SuiteInvalid`` when
    the experiment or suite file cannot be read)."""
    spec = ExperimentSpec.load(experiment)
    suite = Suite.load(experiment.parent / spec.suite)
    runs = read_results(results_path(experiment, results))
    planned = len(spec.arms) * len(suite.tasks) * spec.replicates
    arms = {a.name for a in spec.arms}
    tasks = {t.id for t in suite.tasks}
    done = len({(m.task, m.arm, m.replicate) for m in runs if m.arm in arms and m.task in tasks})
    report = experiment_report(spec, runs, not_run=max(planned - done, 0))
    return RecordedExperiment(experiment, spec, suite, runs, planned, report)
