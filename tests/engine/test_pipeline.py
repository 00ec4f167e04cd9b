"""Complete test-first runs on real git repositories, driven by the scripted model."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from orchestra.demo import scripted_stack
from orchestra.engine.agents import RosterAgents
from orchestra.pipelines import commit_subject
from orchestra.testing import FakeUpstream, Fault, RecordedRequest, Step
from orchestra.testing.scripted import (
    RED_TESTS,
    SAMPLE_TASK,
    ScriptedModel,
    create_sample_repository,
)
from orchestra.tools.workspace import git
from tests.engine.helpers import branch_log, call_keys, report_of

pytestmark = pytest.mark.slow


def _overlap(spans: list[tuple[datetime, datetime]]) -> float:
    """Seconds during which all spans were running at once."""
    return (min(end for _, end in spans) - max(start for start, _ in spans)).total_seconds()


def test_happy_path_red_then_green_with_concurrent_review(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    with scripted_stack(tmp_path / "home", agents=pipeline_agents, review_latency_s=0.4) as stack:
        run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
        row = stack.runtime.wait(run_id, timeout_s=300)
        steps = stack.runtime.services.runs.steps(run_id)
        requests = stack.upstream.requests if stack.upstream else []
        keys = stack.gateway.accounting.keys.run_keys(run_id)
    assert row.status == "succeeded", row.failure_reason
    # The run had its own key, the configured developer's, revoked when it ended.
    assert [(k.developer, k.revoked_at is not None) for k in keys] == [("developer", True)]
    report = report_of(row)

    # Red before green: the red tests failed (all four), then everything passed.
    assert report["tests"]["red"] == {"passed": 0, "failed": 4, "error": 0, "skipped": 0}
    assert report["tests"]["green"]["failed"] == 0
    assert report["tests"]["green"]["passed"] == 7  # 3 existing + 4 new
    # Commits in order: tests, implementation, docs, QA's edge cases, fixes.
    subjects = branch_log(repo, str(row.branch))
    assert [s.split(":")[0] for s in subjects] == ["test", "feat", "docs", "test", "fix"]
    # The red tests on the branch are byte-identical to what the test writer wrote.
    assert git(repo, "show", f"{row.branch}:tests/test_low_stock.py") == RED_TESTS
    # The main branch of the repository is untouched.
    assert git(repo, "rev-parse", "main").strip() == report["base_commit"]

    # The four review agents really ran at the same time.
    review = [s for s in steps if s.phase == "review"]
    assert len(review) == 4
    spans = [(s.started_at, s.finished_at) for s in review]
    assert all(end is not None for _, end in spans)
    assert _overlap(spans) > 0.2, spans  # type: ignore[arg-type]

    # Costs come from the gateway ledger, per agent; tokens reported per phase.
    assert report["cost_source"] == "gateway ledger"
    assert report["cost_usd"] > 0
    assert all(a["cost_usd"] is not None for a in report["agents"] if a["model_calls"])
    assert set(report["tokens_by_phase"]) == {"plan", "red", "green", "review", "fix"}
    assert report["coverage"]["status"] == "measured"
    assert report["coverage"]["percent"] == 100.0
    assert report["blocking_findings"][0]["finding"].startswith("low_stock has no docstring")
    assert report["fixes"]["tests"] == "pass"
    # Every model call was made once.
    keys = call_keys(requests)
    assert max(keys.values()) == 1
    assert sum(a["model_calls"] for a in report["agents"]) == len(requests)


def test_red_gate_rejects_tests_that_already_pass(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    with scripted_stack(
        tmp_path / "home",
        scenario="already_passing",
        agents=pipeline_agents,
        extra_yaml="engine: {red_attempts: 2}",
    ) as stack:
        run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
        row = stack.runtime.wait(run_id, timeout_s=300)
        steps = stack.runtime.services.runs.steps(run_id)
    assert row.status == "failed"
    assert row.failure_reason.startswith("red gate")
    report = report_of(row)
    assert len(report["tests"]["red_rejections"]) == 2
    assert all("already pass" in r for r in report["tests"]["red_rejections"])
    assert {s.phase for s in steps} == {"plan", "red"}  # no implementer ever ran
    assert branch_log(repo, str(row.branch)) == []  # nothing committed
    # The live view's latest test result is the last red-gate attempt, with its verdict.
    latest = json.loads((tmp_path / "home" / "runs" / run_id / "tests" / "latest.json").read_text())
    assert latest["name"] == "red-2"
    assert latest["verdict"].startswith("red gate rejected") and latest["passed"] >= 1


def test_broken_test_file_is_sent_back_with_the_error(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    with scripted_stack(
        tmp_path / "home", scenario="broken_test_file", agents=pipeline_agents
    ) as stack:
        run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
        row = stack.runtime.wait(run_id, timeout_s=300)
        artifacts = stack.runtime.services.artifacts
        second_brief = artifacts.get_text(run_id, "messages/red-2.md")
    assert row.status == "succeeded", row.failure_reason
    report = report_of(row)
    assert report["tests"]["red_rejections"] == ["the test files do not compile"]
    # The writer got the compiler's complaint back.
    assert "tests/test_low_stock.py: line 1" in second_brief


def test_implementation_that_never_passes_fails_within_its_bounds(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    with scripted_stack(
        tmp_path / "home",
        scenario="never_passes",
        agents=pipeline_agents,
        extra_yaml="engine: {green_iterations: 2}",
    ) as stack:
        run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
        row = stack.runtime.wait(run_id, timeout_s=300)
        steps = stack.runtime.services.runs.steps(run_id)
    assert row.status == "failed"
    assert row.failure_reason == "green gate: tests still failing after 2 implementation rounds"
    green = sorted(s.step for s in steps if s.phase == "green")
    assert green == ["green-1-report", "green-1-stock", "green-2-report", "green-2-stock"]
    report = report_of(row)
    assert report["status"] == "failed"
    # The branch keeps what was done: the red tests are committed.
    assert branch_log(repo, str(row.branch)) == [
        commit_subject("test: failing tests for: ", SAMPLE_TASK)
    ]


def test_budget_exhausted_mid_run_stops_cleanly(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    # Small replies keep the gateway's per-call reservation (priced on max_tokens) below
    # the budget, so the run gets going and runs out part-way; 600 is above the scripted
    # model's longest reply (~490 tokens), which the fake upstream would otherwise cut.
    with scripted_stack(
        tmp_path / "home", agents=pipeline_agents, extra_yaml="engine: {max_output_tokens: 600}"
    ) as stack:
        # A whole run costs ~$0.23 at the demo's prices; the plan alone ~$0.11.
        run_id = stack.runtime.start_run(SAMPLE_TASK, repo, budget_usd=0.2)
        row = stack.runtime.wait(run_id, timeout_s=300)
        steps = {s.step: s for s in stack.runtime.services.runs.steps(run_id)}
        spent = stack.gateway.costs_for_run(run_id)
    assert row.status == "failed"
    assert "budget" in (row.failure_reason or ""), row.failure_reason
    assert not row.failure_reason.startswith("budget exhausted during plan"), row.failure_reason
    assert steps["plan-1"].status == "finished"  # work before the limit was kept
    assert any(s.status == "budget" for s in steps.values())
    assert 0 < sum(spent.values()) <= 0.2  # the gateway never let the run overspend
    assert report_of(row)["status"] == "failed"


def test_two_runs_at_once_on_the_same_repository_are_isolated(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    with scripted_stack(tmp_path / "home", agents=pipeline_agents) as stack:
        first = stack.runtime.start_run(SAMPLE_TASK, repo)
        second = stack.runtime.start_run(SAMPLE_TASK, repo)
        rows = [stack.runtime.wait(r, timeout_s=400) for r in (first, second)]
        step_sets = [stack.runtime.services.runs.steps(r) for r in (first, second)]
    assert [r.status for r in rows] == ["succeeded", "succeeded"]
    # Each run has its own ten step rows (step names repeat across runs, rows do not).
    assert [len(steps) for steps in step_sets] == [10, 10]
    assert {s.run_id for s in step_sets[0]} == {first}
    assert all(s.status == "finished" for steps in step_sets for s in steps)
    assert rows[0].branch != rows[1].branch
    assert rows[0].worktree_path != rows[1].worktree_path
    for row in rows:
        assert len(branch_log(repo, str(row.branch))) == 5
    # Each branch holds exactly one copy of the new module: no cross-talk.
    for row in rows:
        assert "low_stock" in git(repo, "show", f"{row.branch}:inventory/stock.py")
    assert git(repo, "status", "--porcelain") == ""


def test_an_upstream_rate_limit_is_waited_out_and_the_run_succeeds(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    """Upstream 429s reach the agent through the real gateway (its own retry off); the
    agent waits the retry-after (an injected sleep) and goes on. Before, the run failed."""
    repo = create_sample_repository(tmp_path / "repo")
    model = ScriptedModel("happy")
    refused: list[str] = []

    def respond(request: RecordedRequest) -> Step | None:
        body = request.json or {}
        first = json.dumps((body.get("messages") or [{}])[0].get("content", ""))
        if "Step: green-1-stock" in first and len(refused) < 2:
            refused.append("green-1-stock")
            return Fault(429, retry_after=3)
        return model(request)

    waits: list[float] = []
    upstream = FakeUpstream.start()
    upstream.responder = respond
    try:
        with scripted_stack(
            tmp_path / "home",
            agents=pipeline_agents,
            upstream_url=upstream.base_url,
            extra_yaml="gateway: {retry: {max_attempts: 1}}",
        ) as stack:
            stack.runtime.services.sleep = waits.append
            run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
            row = stack.runtime.wait(run_id, timeout_s=300)
    finally:
        upstream.stop()
    assert row.status == "succeeded", row.failure_reason
    assert refused == ["green-1-stock"] * 2
    assert waits == [3.0, 3.0]  # the upstream's retry-after, passed on by the gateway
