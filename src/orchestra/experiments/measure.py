"""What one run of an experiment measured, read from the run's record, report and ledger."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from orchestra.experiments.acceptance import Acceptance


@dataclass(frozen=True)
class RunMeasurement:
    """One run of one task on one arm; a line of the experiment's results file."""

    task: str
    arm: str
    replicate: int
    run_id: str
    status: str
    """The run's own outcome (``succeeded``, ``failed``, ``stopped``)."""
    passed: bool
    """Whether the hidden tests passed on the run's branch."""
    acceptance: dict[str, Any] = field(default_factory=dict)
    coverage: float | None = None
    """Changed-line coverage (covered / changed executable lines), when measured."""
    review_findings: int | None = None
    security_findings: int | None = None
    cost_usd: float | None = None
    """From the gateway's ledger (``None``: unknown, not zero)."""
    wall_time_s: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    """Each model call's latency, from the ledger."""

    def to_json(self) -> dict[str, Any]:
        """The results-file line."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunMeasurement:
        """Read a results-file line (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _coverage(report: dict[str, Any]) -> float | None:
    coverage = report.get("coverage") or {}
    if not isinstance(coverage, dict) or coverage.get("status") != "measured":
        return None
    files = coverage.get("files") or {}
    changed = sum(int(f.get("changed_executable") or 0) for f in files.values())
    covered = sum(int(f.get("covered") or 0) for f in files.values())
    return covered / changed if changed else None


def _review_findings(report: dict[str, Any]) -> int | None:
    review = report.get("review")
    if not isinstance(review, dict):
        return None
    return sum(len(v.get("findings") or []) for v in review.values() if isinstance(v, dict))


def _security_findings(report: dict[str, Any]) -> int | None:
    security = report.get("security")
    if not isinstance(security, dict) or not security.get("ran"):
        return None
    return len(security.get("findings") or [])


def read_report(report_path: str | None) -> dict[str, Any]:
    """The run's ``report.json`` (next to its ``report.md``), or ``{}`` when it has none."""
    if not report_path:
        return {}
    path = Path(report_path).with_suffix(".json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def measurement_of(
    key: tuple[str, str, int],
    row: Any,
    acceptance: Acceptance,
    *,
    latencies_ms: list[float],
    cost_usd: float | None,
) -> RunMeasurement:
    """The measurement of run ``row`` (an engine run row) for ``(task, arm, replicate)``."""
    report = read_report(row.report_path)
    wall = None
    if row.finished_at is not None and row.created_at is not None:
        wall = (row.finished_at - row.created_at).total_seconds()
    return RunMeasurement(
        task=key[0],
        arm=key[1],
        replicate=key[2],
        run_id=row.id,
        status=row.status,
        passed=acceptance.passed,
        acceptance=asdict(acceptance),
        coverage=_coverage(report),
        review_findings=_review_findings(report),
        security_findings=_security_findings(report),
        cost_usd=cost_usd,
        wall_time_s=wall,
        latencies_ms=latencies_ms,
    )
