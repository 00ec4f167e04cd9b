"""The red and green gates over a real worktree: run, read the report, judge per case.

These are what a pipeline calls. Each runs the repository's whole suite once in its own
environment, reads the structured report, and returns a :class:`GateResult` whose
``verdict.reason`` is bounded and safe to print, store and send to a model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestra.repository.changes import ChangedTests, changed_tests_in, is_test_support
from orchestra.repository.environment import TestEnvironment
from orchestra.repository.planned import PlannedCode, planned_code
from orchestra.repository.reports import TestReport
from orchestra.repository.runner import run_test_suite
from orchestra.repository.verdict import CaseVerdict, judge_green_cases, judge_red_cases
from orchestra.tools import CommandLimits


@dataclass(frozen=True)
class GateResult:
    """A gate's verdict with the report and, for red, the tests it judged new."""

    verdict: CaseVerdict
    report: TestReport
    changed: ChangedTests | None = None
    planned: PlannedCode | None = None

    def new_case_counts(self) -> dict[str, int]:
        """Outcomes of the new or changed tests only (red), or of every case (green).

        A new test whose file could not be collected (an import of planned code) did not
        run: it counts as an ``error``.
        """
        counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        seen: set[str] = set()
        for case in self.report.cases:
            if self.changed is None or self.changed.is_new_or_changed(case.id):
                counts[case.outcome] += 1
                owner = self.changed.function_of(case.id) if self.changed else None
                seen.add(owner or case.function_id)
        if self.changed is not None and self.report.cases:
            counts["error"] += len(self.changed.functions - seen)
        return counts

    def details(self, limit: int = 3, chars: int = 600) -> str:
        """The error lines of a few cases the verdict names, bounded; for a model."""
        named = {i for p in self.verdict.problems for i in p.ids[:limit]}
        parts: list[str] = []
        for case in self.report.cases:
            if case.id in named and case.detail and len(parts) < limit:
                parts.append(f"{case.id}:\n{case.detail[:chars]}")
        return "\n\n".join(parts)


def implementation_files(files: Iterable[str]) -> list[str]:
    """The plan's files that are implementation (test files and test helpers removed)."""
    return [f for f in files if not is_test_support(f)]


def red_gate(
    env: TestEnvironment,
    worktree: Path,
    *,
    base_commit: str,
    planned_files: Iterable[str],
    home: Path,
    limits: CommandLimits,
    report_dir: Path,
    base_ids: frozenset[str] | None = None,
    preexisting: Iterable[str] = (),
    name: str = "red",
) -> GateResult:
    """Run the suite with the new tests in place and judge red per test case.

    ``base_ids`` are the test ids of the base commit (from :func:`preflight`); without
    them only the diff decides which tests are new.
    """
    changed = changed_tests_in(worktree, base_commit, base_ids)
    planned = planned_code(worktree, implementation_files(planned_files))
    if changed.unparsable:
        report = TestReport()  # no run: the files do not even compile
    else:
        report = run_test_suite(
            env, worktree, home=home, limits=limits, report_dir=report_dir, name=name
        )
    verdict = judge_red_cases(report, changed, planned, preexisting)
    return GateResult(verdict, report, changed, planned)


def green_gate(
    env: TestEnvironment,
    worktree: Path,
    *,
    home: Path,
    limits: CommandLimits,
    report_dir: Path,
    preexisting: Iterable[str] = (),
    name: str = "green",
) -> GateResult:
    """Run the suite and accept when every test passes (bar chosen pre-existing failures)."""
    report = run_test_suite(
        env, worktree, home=home, limits=limits, report_dir=report_dir, name=name
    )
    return GateResult(judge_green_cases(report, preexisting), report)
