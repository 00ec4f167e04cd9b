"""Reports, summaries and `orchestra status` read well for runs in every state they can end
in: no ``None``, no ``n/a%``, no Python dict, bandit named only when it ran, and a task full
of Markdown cannot break the report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestra.app import Orchestra
from orchestra.cli.app import app
from orchestra.engine import ArtifactStore, RunStore
from orchestra.pipelines import commit_subject, parse_plan, task_title
from orchestra.pipelines.test_first import TestFirstState, render_markdown, summary_line
from orchestra.pipelines.test_first.report import build_report
from orchestra.pipelines.test_first.state import (
    BaselineRecord,
    Commit,
    FixRecord,
    GreenResult,
    RedVerdict,
    ReviewVerdict,
)
from orchestra.providers import Usage
from orchestra.testing.scripted import PLAN

TASK = (
    "# Add a `low_stock` report | <b>urgent</b> [see](http://x)\n\n"
    "## Details\n| a | b |\n```python\nprint('hi')\n```\n"
)
FORBIDDEN = (re.compile(r"\bNone\b"), re.compile(r"n/a%"), re.compile(r"\{'\w+': "))


def _green(**kw: Any) -> GreenResult:
    base: dict[str, Any] = dict(
        exit_code=0,
        ok=True,
        duration_s=1.0,
        timed_out=False,
        log="tests/green-1.log",
        passed=7,
        failed=0,
        error=0,
        iterations=1,
    )
    base.update(kw)
    return GreenResult(**base)


def _red() -> RedVerdict:
    counts = {"passed": 0, "failed": 4, "error": 0, "skipped": 0}
    return RedVerdict(True, "ok", "", ["tests/test_low_stock.py"], "tests/red-1.log", counts, 1)


def _plan() -> Any:
    plan, _ = parse_plan(PLAN)
    return plan


def _state(reached: str) -> TestFirstState:
    """What a run's state holds when it ended during phase ``reached``."""
    state = TestFirstState()
    order = ["preflight", "plan", "red", "green", "review", "done"]
    at = order.index(reached)
    if at > 0:
        state.baseline = BaselineRecord("abc", "pytest in .venv", "ids.json", 3)
        state.phases["preflight"] = {"start": 1.0, "end": 2.0}
    if at > 1:
        state.plan = _plan()
        state.phases["plan"] = {"start": 2.0}  # a phase with no recorded end
    if at == 2:
        state.red_rejections = ["2 new test(s) already pass: the behaviour exists"]
    if at > 2:
        state.red = _red()
        state.commits.append(Commit("a" * 40, commit_subject("test: failing tests for: ", TASK)))
    if at > 3:
        state.green = _green()
        state.bandit = {"ran": False, "reason": "No module named bandit", "findings": []}
        state.review = {
            "review-code-review": ReviewVerdict(
                "code-reviewer", "finished", None, [{"blocking": True}], "one | finding"
            ),
            "review-docs": ReviewVerdict("readme-writer", "loop", None, ["not a dict"], ""),
        }
        state.blocking = [{"finding": "edge-case tests fail", "blocking": True}]
    if at > 4:
        state.bandit = {"ran": True, "files": ["inventory/stock.py"], "findings": []}
        state.fixes = FixRecord(rounds=1, findings=1, tests="pass")
        state.coverage = {
            "status": "measured",
            "percent": 100.0,
            "covered_lines": 5,
            "changed_executable_lines": 5,
        }
    return state


STATES = {
    "succeeded": ("succeeded", None, "done"),
    "preflight": ("failed", "preflight: No module named pytest (fix: add pytest)", "preflight"),
    "red": ("failed", "red gate: tests not accepted after 3 attempts", "red"),
    "green": ("failed", "green gate: tests still failing after 3 rounds", "green"),
    "review": ("failed", "fix round: tests fail after 1 round(s) of fixes", "review"),
    "cancelled": ("cancelled", "cancelled by user", "green"),
    "budget": ("failed", "budget exhausted during green-1-stock: budget 'run:x' is spent", "green"),
}


@pytest.fixture
def recorded_runs() -> dict[str, Any]:
    """One recorded run per end state, each with its report written by the pipeline's
    own report builder, in the state folder the CLI reads."""
    reports: dict[str, Any] = {}
    with Orchestra.from_environment() as services:
        runs = RunStore(services.database)
        artifacts = ArtifactStore(services.home, services.database)
        svc = SimpleNamespace(runs=runs, artifacts=artifacts, cost_source=None)
        for name, (status, reason, reached) in STATES.items():
            run_id = f"run-{name}"
            runs.create(
                id=run_id,
                task=TASK,
                repo_path="/tmp/repo",
                branch=f"orchestra/{run_id}",
                worktree_path=None if reached == "preflight" else "/tmp/wt",
                base_commit=None if reached == "preflight" else "b" * 40,
                status=status,
                phase=None if reached == "preflight" else reached,
                failure_reason=reason,
            )
            if reached != "preflight":
                runs.start_step("plan-1", run_id, "plan", "chief-architect")
                runs.set_usage(run_id, "plan-1", Usage(100, 20), 2, "m-unpriced")
                runs.finish_step(run_id, "plan-1", status="finished")
            if name == "budget":
                runs.start_step("green-1-stock", run_id, "green", "python-developer")
                runs.finish_step(run_id, "green-1-stock", status="budget")
            if name == "succeeded":
                _ledger(services.database, run_id, {"plan-1": 10_000_000, "green-1": 2_300_000})
            if name == "red":
                latest = {
                    "name": "red-3",
                    "verdict": "red gate rejected: 2 new tests pass",
                    "passed": 2,
                    "failed": 0,
                    "error": 0,
                }
                artifacts.put_json(run_id, "tests/latest.json", latest, "test-status")
            path = build_report(svc, run_id, status, reason, _state(reached))  # type: ignore[arg-type]
            runs.update(run_id, report_path=path)
            reports[name] = json.loads(Path(path).with_suffix(".json").read_text())
    return reports


def _ledger(database: Any, run_id: str, nano_by_step: dict[str, int]) -> None:
    """Ledger entries as the gateway writes them for ``run_id``'s calls."""
    from datetime import UTC, datetime

    from orchestra.store.tables.gateway import GatewayLedgerEntry

    now = datetime.now(UTC)
    with database.session() as session:
        for step, nano in nano_by_step.items():
            session.add(
                GatewayLedgerEntry(
                    id=f"e-{run_id}-{step}",
                    started_at=now,
                    ended_at=now,
                    run_id=run_id,
                    step=step,
                    cost_nano=nano,
                    outcome="ok",
                )
            )


def _assert_reads_well(text: str) -> None:
    for pattern in FORBIDDEN:
        assert not pattern.search(text), (pattern.pattern, text)


def test_reports_and_summaries_read_well_in_every_state(recorded_runs: dict[str, Any]) -> None:
    for name, data in recorded_runs.items():
        markdown = render_markdown(data)
        summary = summary_line(data)
        _assert_reads_well(markdown)
        _assert_reads_well(summary)
        if name == "succeeded":
            assert "bandit: 0 finding(s) in 1 changed Python file(s)" in markdown
            assert "changed-line coverage: 100.0% (5/5 changed executable lines)" in summary
            assert "red new tests 0 passed, 4 failed, 0 errors" in summary
        elif name == "review":
            assert "bandit did not run: No module named bandit" in markdown
        else:
            assert "bandit did not run (the run ended before review)" in markdown, name
        assert name == "succeeded" or "bandit: 0" not in markdown
        if name in {"preflight", "red"}:
            assert "green not reached" in summary
        if name == "preflight":  # no model call: a known $0, not "unknown"
            assert data["cost_usd"] == 0.0
            assert "**Total cost:** $0.0000" in markdown


def test_status_and_report_commands_read_well_in_every_state(
    recorded_runs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    for name in recorded_runs:
        status = runner.invoke(app, ["status", f"run-{name}"])
        assert status.exit_code == 0, status.output
        _assert_reads_well(status.output)
        assert "spent:" in status.output
        if name == "succeeded":  # its cost, from the ledger
            assert "spent: $0.0123" in status.output
            as_json = json.loads(runner.invoke(app, ["status", f"run-{name}", "--json"]).output)
            assert as_json["cost_usd"] == pytest.approx(0.0123)
        if name == "red":  # the latest test result the run recorded
            text = " ".join(status.output.split())
            assert "tests (red-3): red gate rejected: 2 new tests pass — 2 passed, 0 failed" in text
        report = runner.invoke(app, ["report", f"run-{name}"])
        assert report.exit_code == 0, report.output
        _assert_reads_well(report.output)


def test_markdown_in_the_task_cannot_break_the_report(recorded_runs: dict[str, Any]) -> None:
    markdown = render_markdown(recorded_runs["succeeded"])
    lines = markdown.splitlines()
    task_line = next(ln for ln in lines if ln.startswith("**Task:**"))
    assert "\\`low\\_stock\\`" in task_line and "\\|" in task_line and "\\<b\\>" in task_line
    fence = "````"  # longer than the task's own ``` fence, so the task cannot close it
    start = lines.index(f"{fence}text")
    end = lines.index(fence, start + 1)
    assert lines[start + 1 : end] == TASK.strip().splitlines()  # the task, verbatim
    outside = lines[:start] + lines[end + 1 :]
    # One top-level heading outside the fence: the report's own.
    assert [ln for ln in outside if ln.startswith("# ")] == [lines[0]]
    # The sections after the task are intact.
    assert any(ln.startswith("| plan-1 | chief-architect |") for ln in outside)
    assert "## Commits" in outside


def test_commit_subjects_take_the_first_line_bounded_between_words() -> None:
    subject = commit_subject(
        "feat: ",
        "Add a low-stock report for every warehouse in the fleet "
        "with thresholds per item\n\nand more",
    )
    assert len(subject) <= 72 and subject.endswith("…")
    assert subject == "feat: Add a low-stock report for every warehouse in the fleet with…"
    assert commit_subject("docs: ", "short task\nsecond line") == "docs: short task"
    assert task_title("\n\n  spaced   out  \n") == "spaced out"
    assert len(task_title("x" * 200)) == 72  # one word longer than the limit: cut where it must
