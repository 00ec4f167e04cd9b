"""Finish: changed-line coverage, the run report, and the run's final status."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from orchestra.engine import checkpoint
from orchestra.landing import Lander, LandingError, get_entry, queue_run, target_branch
from orchestra.pipelines.test_first.report import build_report
from orchestra.pipelines.test_first.steps import TestFirstRun
from orchestra.repository import changed_line_coverage

log = logging.getLogger("orchestra.pipelines")


def finish(run: TestFirstRun, status: str, reason: str | None) -> dict[str, Any]:
    """Measure coverage (when green was reached), write the report, record the end."""
    run.phase("finish")

    def coverage() -> dict[str, Any]:
        if status != "succeeded":
            return {"status": "not measured (run did not reach green)"}
        ws = run.workspace()
        home = run.svc.artifacts.run_dir(run.run_id) / "home"
        return changed_line_coverage(
            run.environment(),
            ws.root,
            ws.base_commit,
            home=home,
            limits=run.svc.limits(),
            data_dir=home / "coverage",
        )

    run.state.coverage = checkpoint("coverage", coverage)

    def write() -> str:
        return build_report(run.svc, run.run_id, status, reason, run.state)

    report_path = checkpoint("report", write)
    landing = land(run) if status == "succeeded" and run.svc.config.engine.land_on_success else None
    run.svc.runs.update(
        run.run_id,
        status=status,
        failure_reason=reason,
        report_path=report_path,
        finished_at=run.svc.runs.clock(),
        phase="done",
    )
    return {"status": status, "reason": reason, "report": report_path, "landing": landing}


LANDED_BY = "engine.land_on_success"
"""Who the queue says asked for a run's landing (``requested_by``): the configuration."""


def land(run: TestFirstRun) -> dict[str, Any]:
    """Queue the run's branch on its repository's merge queue and work through the queue
    (``engine.land_on_success``), before the run is recorded as ended: a run's end is what
    ``orchestra run`` waits for before it stops the engine. The entry as it stands after:
    ``landed``, ``conflict``, ``failed`` or ``error``, or still ``queued`` when another
    lander is working through the queue (it lands this entry too); ``not queued`` with the
    reason when the queue refused the branch (someone queued it already, say): the run
    still succeeds."""
    run.phase("land")
    svc = run.svc
    row = run.row

    def queue_it() -> dict[str, Any]:
        try:
            if not row.branch:
                raise LandingError(f"run {run.run_id} has no branch to land")
            onto = target_branch(Path(row.repo_path), None)
            entry = queue_run(
                svc.database, run.run_id, row.repo_path, row.branch, onto, requested_by=LANDED_BY
            )
        except LandingError as exc:
            log.warning("run %s was not queued to land: %s", run.run_id, exc.message)
            return {"status": "not queued", "reason": exc.message}
        return {"id": entry.id, "status": entry.status}

    queued: dict[str, Any] = checkpoint("queue to land", queue_it)
    if "id" not in queued:
        return queued

    def work() -> dict[str, Any]:
        Lander.for_config(svc.database, svc.config).process(row.repo_path)
        entry = get_entry(svc.database, queued["id"])
        log.info("run %s: merge queue entry %d %s", run.run_id, entry.id, entry.status)
        return entry.to_dict()

    landed: dict[str, Any] = checkpoint("land", work)
    return landed
