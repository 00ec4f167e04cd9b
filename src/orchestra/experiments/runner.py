"""Running an experiment: every task on every arm, k times, within a budget, resumable.

Each finished run is appended to the results file (JSON lines) as it ends. Running the
experiment again skips the (task, arm, replicate) already recorded, so an interrupted
experiment resumes where it stopped; a run cut off in the middle is started afresh.
:func:`run_experiment` runs a whole experiment in this process (tests, benchmarks);
``orchestra experiment run`` makes it a DBOS workflow (:mod:`orchestra.experiments.durable`)
whose steps each make one run with :func:`run_single` in a process of its own.

The engine each arm runs on is handed in (``open_arm``): the composition root builds it
from the arm's configuration; tests hand in scripted models.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestra.config import OrchestraConfig
from orchestra.experiments.acceptance import checkout_base, judge, reference_passing
from orchestra.experiments.errors import SuiteInvalid
from orchestra.experiments.measure import RunMeasurement, measurement_of
from orchestra.experiments.spec import Arm, ExperimentSpec
from orchestra.experiments.suite import Suite, Task
from orchestra.repository import resolve_environment
from orchestra.tools import CommandLimits

if TYPE_CHECKING:  # the engine (and DBOS) load only when an experiment runs
    from orchestra.engine import EngineRuntime


@dataclass
class ArmSession:
    """An engine running one arm's configuration."""

    runtime: EngineRuntime
    config: OrchestraConfig
    ledger_entries: Callable[[str], list[Any]]
    """The gateway ledger's entries of one run (``cost_usd``, ``latency_ms``)."""
    prepare: Callable[[Task], None] = field(default=lambda _task: None)
    """Called before each run of a task (a scripted arm loads the task's script)."""


ArmOpener = Callable[[Arm], AbstractContextManager[ArmSession]]
"""Builds (and afterwards stops) the engine of one arm."""


@dataclass
class ExperimentOutcome:
    """What a call to :func:`run_experiment` did."""

    measurements: list[RunMeasurement]
    """Every recorded run, those of earlier calls included."""
    ran: int
    """Runs started by this call."""
    skipped: int
    """Runs already recorded, not run again."""
    not_run: int
    """Runs left out because the budget was spent."""
    spent_usd: float


def read_results(path: Path) -> list[RunMeasurement]:
    """The measurements recorded in a results file (none when it does not exist)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(RunMeasurement.from_json(json.loads(line)))
    return out


def append_result(path: Path, measurement: RunMeasurement | dict[str, Any]) -> None:
    """Append one run's measurement to a results file."""
    data = measurement.to_json() if isinstance(measurement, RunMeasurement) else measurement
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(data, sort_keys=True) + "\n")


def _pending(
    spec: ExperimentSpec, suite: Suite, done: set[tuple[str, str, int]]
) -> Iterator[tuple[Arm, list[tuple[Task, int]]]]:
    for arm in spec.arms:
        todo = [
            (task, r)
            for r in range(spec.replicates)
            for task in suite.tasks
            if (task.id, arm.name, r) not in done
        ]
        if todo:
            yield arm, todo


def _cost(entries: list[Any]) -> float | None:
    costs = [float(e.cost_usd) for e in entries if getattr(e, "cost_usd", None) is not None]
    return sum(costs) if costs else None


@dataclass
class _Run:
    spec: ExperimentSpec
    workdir: Path
    checkouts: dict[str, Path] = field(default_factory=dict)

    def required(self, task: Task, env: Any, limits: CommandLimits) -> frozenset[str]:
        """The hidden cases the task's own commit passes, measured once and kept."""
        path = self.workdir / "reference" / f"{task.id}.json"
        if path.exists():
            return frozenset(json.loads(path.read_text(encoding="utf-8")))
        ids = reference_passing(task, env, home=self.workdir, limits=limits)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(sorted(ids)), encoding="utf-8")
        return ids

    def checkout(self, task: Task) -> Path:
        if task.id not in self.checkouts:
            dest = self.workdir / "checkouts" / task.id
            self.checkouts[task.id] = dest if dest.exists() else checkout_base(task, dest)
        return self.checkouts[task.id]

    def one(self, session: ArmSession, arm: Arm, task: Task, replicate: int) -> RunMeasurement:
        checkout = self.checkout(task)
        session.prepare(task)
        run_id = session.runtime.start_run(task.text, checkout, budget_usd=self.spec.run_budget_usd)
        row = session.runtime.wait(run_id, timeout_s=self.spec.run_timeout_s)
        env = resolve_environment(checkout, session.config)
        limits = CommandLimits(timeout_s=session.config.engine.command_timeout_s)
        required = self.required(task, env, limits)
        verdict = judge(
            task, checkout, row.branch, env, home=self.workdir, limits=limits, required=required
        )
        entries = session.ledger_entries(run_id)
        latencies = [float(e.latency_ms) for e in entries if e.latency_ms is not None]
        return measurement_of(
            (task.id, arm.name, replicate),
            row,
            verdict,
            latencies_ms=latencies,
            cost_usd=_cost(entries),
        )


def run_experiment(
    spec: ExperimentSpec,
    suite: Suite,
    open_arm: ArmOpener,
    *,
    results: Path,
    workdir: Path,
) -> ExperimentOutcome:
    """Run what ``results`` does not hold yet; stop starting runs once the budget is spent."""
    recorded = read_results(results)
    done = {(m.task, m.arm, m.replicate) for m in recorded}
    spent = sum(m.cost_usd or 0.0 for m in recorded)
    total = len(spec.arms) * len(suite.tasks) * spec.replicates
    workdir.mkdir(parents=True, exist_ok=True)
    state = _Run(spec, workdir)
    ran = 0
    for arm, todo in _pending(spec, suite, done):
        if spec.budget_usd is not None and spent >= spec.budget_usd:
            break
        with open_arm(arm) as session:
            for task, replicate in todo:
                if spec.budget_usd is not None and spent >= spec.budget_usd:
                    break
                measurement = state.one(session, arm, task, replicate)
                append_result(results, measurement)
                recorded.append(measurement)
                spent += measurement.cost_usd or 0.0
                ran += 1
    return ExperimentOutcome(
        measurements=recorded,
        ran=ran,
        skipped=len(done),
        not_run=total - len(recorded),
        spent_usd=spent,
    )


def run_single(
    spec: ExperimentSpec,
    suite: Suite,
    open_arm: ArmOpener,
    key: tuple[str, str, int],
    *,
    workdir: Path,
) -> RunMeasurement:
    """Make one run, ``key`` = (task id, arm name, replicate), on its arm's engine."""
    task_id, arm_name, replicate = key
    task = next((t for t in suite.tasks if t.id == task_id), None)
    arm = next((a for a in spec.arms if a.name == arm_name), None)
    if task is None or arm is None:
        raise SuiteInvalid(
            f"the experiment has no task {task_id!r} on arm {arm_name!r}",
            hint="the suite or the experiment file changed since the experiment started",
        )
    workdir.mkdir(parents=True, exist_ok=True)
    with open_arm(arm) as session:
        return _Run(spec, workdir).one(session, arm, task, replicate)
