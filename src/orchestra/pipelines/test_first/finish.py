"""Finish: changed-line coverage, the run report, and the run's final status."""

from __future__ import annotations

from typing import Any

from orchestra.engine import checkpoint
from orchestra.pipelines.test_first.report import build_report
from orchestra.pipelines.test_first.steps import TestFirstRun
from orchestra.repository import changed_line_coverage


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
    run.svc.runs.update(
        run.run_id,
        status=status,
        failure_reason=reason,
        report_path=report_path,
        finished_at=run.svc.runs.clock(),
        phase="done",
    )
    return {"status": status, "reason": reason, "report": report_path}
