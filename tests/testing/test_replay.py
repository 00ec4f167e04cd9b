"""The commit-replay model: a real commit's tests in red, its source in green."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestra.engine.agents import RosterAgents
from orchestra.testing import CommitChange, CommitReplay, FakeUpstream
from orchestra.testing.scripted import SAMPLE_FILES, create_sample_repository
from orchestra.testing.steps import RecordedRequest
from orchestra.tools.workspace import git
from tests.repository.fixtures import commit_files, load_pipeline_agents

REPORT_PY = '"""Reports."""\n\n\ndef total(stock):\n    return sum(stock._items.values())\n'
TOTAL_TEST = (
    "from inventory.report import total\nfrom inventory.stock import Stock\n\n\n"
    "def test_total():\n    stock = Stock()\n    stock.add('a', 2)\n    stock.add('b', 3)\n"
    "    assert total(stock) == 5\n"
)


@pytest.fixture
def pipeline_agents(tmp_path: Path) -> RosterAgents:
    """The built-in agents the test-first pipeline uses."""
    return load_pipeline_agents(tmp_path / "agents")


def _commit(repo: Path) -> str:
    return commit_files(
        repo,
        {
            "inventory/report.py": REPORT_PY,
            "tests/test_report.py": TOTAL_TEST,
            "tests/conftest.py": "",
            "README.md": None,
        },
        "Add a stock total report\n\nLonger body.",
    )


def test_a_commit_is_split_into_tests_and_sources(tmp_path: Path) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    sha = _commit(repo)
    change = CommitChange.read(repo, sha)
    assert change.parent == git(repo, "rev-parse", f"{sha}^").strip()
    assert change.tests == {"tests/test_report.py": TOTAL_TEST, "tests/conftest.py": ""}
    assert change.sources == {"inventory/report.py": REPORT_PY, "README.md": None}
    assert change.task.startswith("Add a stock total report")
    plan = change.plan()
    assert plan["parts"][0]["files"] == ["README.md", "inventory/report.py"]
    assert plan["test_files"] == ["tests/conftest.py", "tests/test_report.py"]


def _request(step: str, turns: int) -> RecordedRequest:
    messages: list[dict[str, object]] = [
        {"role": "user", "content": f"Phase: x\nAgent: y\nStep: {step}\n\nDo it."}
    ]
    for _ in range(turns):
        messages += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "r"}]
    body = {"model": "m", "messages": messages}
    return RecordedRequest("POST", "/v1/messages", {}, json.dumps(body).encode(), body)


def test_red_writes_the_test_changes_and_green_the_sources(tmp_path: Path) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    replay = CommitReplay.of(repo, _commit(repo))
    red = [replay(_request("red-1", turn)) for turn in range(3)]
    written = [r.tool_calls[0].input.get("path") for r in red if r is not None]
    assert written == ["tests/conftest.py", "tests/test_report.py", None]
    assert red[-1] is not None and red[-1].tool_calls[0].name == "finish"
    green = replay(_request("green-1-commit", 0))
    assert green is not None and green.tool_calls[0].input["content"] == REPORT_PY
    review = replay(_request("review-security", 0))
    assert review is not None and review.tool_calls[0].input["verdict"] == "approve"
    plan = replay(_request("plan", 0))
    assert plan is not None and plan.tool_calls[0].input["plan"]["parts"][0]["name"] == "commit"


@pytest.mark.slow
def test_replayed_commit_reaches_green_through_the_pipeline(
    tmp_path: Path,
    pipeline_agents: RosterAgents,
) -> None:
    from orchestra.demo import scripted_stack

    source = create_sample_repository(tmp_path / "source")
    sha = commit_files(
        source,
        {"inventory/report.py": REPORT_PY, "tests/test_report.py": TOTAL_TEST},
        "Add a stock total report",
    )
    target = create_sample_repository(tmp_path / "target")  # the commit's parent
    assert set(SAMPLE_FILES) <= {p for p in git(target, "ls-files").splitlines()}
    upstream = FakeUpstream.start()
    try:
        replay = CommitReplay.of(source, sha)
        upstream.responder = replay
        with scripted_stack(
            tmp_path / "home", agents=pipeline_agents, upstream_url=upstream.base_url
        ) as stack:
            run_id = stack.runtime.start_run(replay.change.task, target)
            row = stack.runtime.wait(run_id, timeout_s=300)
    finally:
        upstream.stop()
    assert row.status == "succeeded", row.failure_reason
    assert git(target, "show", f"{row.branch}:inventory/report.py") == REPORT_PY
    assert git(target, "show", f"{row.branch}:tests/test_report.py") == TOTAL_TEST
