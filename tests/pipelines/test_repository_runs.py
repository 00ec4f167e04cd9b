"""Whole runs on fixture repositories: the preflight, the per-case red gate, the
repository's own environment, driven by replays of real commits (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestra.demo import scripted_stack
from orchestra.engine.agents import RosterAgents
from orchestra.testing import CommitReplay, FakeUpstream
from orchestra.testing.scripted import create_repository
from orchestra.tools.workspace import git
from tests.engine.helpers import report_of
from tests.repository.fixtures import (
    SRC_LAYOUT,
    build_wheel,
    load_pipeline_agents,
    make_venv,
    pip_install,
    site_linking_pytest,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def agents(tmp_path: Path) -> RosterAgents:
    """The built-in agents the test-first pipeline uses."""
    return load_pipeline_agents(tmp_path / "agents")


def _feature_commit(repo: Path, files: dict[str, str], message: str) -> str:
    """Commit ``files`` on a branch ``feature``; ``main`` stays at the parent."""
    git(repo, "checkout", "-q", "-b", "feature")
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@l", "commit", "-q", "-m", message)
    sha = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "main")
    return sha


def _replay(tmp_path: Path, agents: RosterAgents, repo: Path, sha: str):  # type: ignore[no-untyped-def]
    upstream = FakeUpstream.start()
    try:
        replay = CommitReplay.of(repo, sha)
        upstream.responder = replay
        # The replay writes whole files in one call (a 10 KB test file is ~4,400 tokens):
        # room for them, or the fake upstream cuts the call at max_tokens, as a model would.
        with scripted_stack(
            tmp_path / "home",
            agents=agents,
            upstream_url=upstream.base_url,
            extra_yaml="engine: {max_output_tokens: 16000}",
        ) as s:
            run_id = s.runtime.start_run(replay.change.task, repo)
            row = s.runtime.wait(run_id, timeout_s=600)
        return row, list(upstream.requests)
    finally:
        upstream.stop()


MANY = "".join(f"def test_add_{i}():\n    assert add({i}, 1) == {i + 1}\n\n\n" for i in range(200))
ADDED = (
    "def test_mul():\n    assert calc.mul(2, 3) == 6\n\n\n"
    "def test_mul_by_zero():\n    assert calc.mul(0, 9) == 0\n\n\n"
    "def test_mul_negative():\n    assert calc.mul(-2, 3) == -6\n"
)


def test_commit_adding_three_tests_to_a_file_of_two_hundred_reaches_green(
    tmp_path: Path, agents: RosterAgents
) -> None:
    header = "import calc\nfrom calc import add\n\n\n"
    repo = create_repository(
        tmp_path / "calc",
        {"calc.py": "def add(a, b):\n    return a + b\n", "tests/test_calc.py": header + MANY},
    )
    sha = _feature_commit(
        repo,
        {
            "calc.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n",
            "tests/test_calc.py": header + MANY + ADDED,
        },
        "Add calc.mul",
    )
    row, _ = _replay(tmp_path, agents, repo, sha)
    assert row.status == "succeeded", row.failure_reason
    report = report_of(row)
    assert report["tests"]["red"] == {"passed": 0, "failed": 3, "error": 0, "skipped": 0}
    assert report["tests"]["red_rejections"] == []
    assert report["tests"]["green"]["passed"] == 203
    assert report["coverage"]["status"] == "measured"
    assert report["coverage"]["files"] == {
        "calc.py": {"changed_executable": 2, "covered": 2, "missing": []}
    }


def test_src_layout_with_its_own_venv_and_editable_install_reaches_green(
    tmp_path: Path, agents: RosterAgents
) -> None:
    repo = create_repository(tmp_path / "mypkg", SRC_LAYOUT)
    python = make_venv(
        repo / ".venv", with_pytest=site_linking_pytest(tmp_path / "site", with_coverage=True)
    )
    pip_install(python, build_wheel(tmp_path / "w", "shinydep", {"shinydep.py": "TWO = 2\n"}))
    pip_install(python, build_wheel(tmp_path / "w", "mypkg", {"_mypkg.pth": f"{repo / 'src'}\n"}))
    sha = _feature_commit(
        repo,
        {
            "src/mypkg/core.py": "def double(x):\n    return 2 * x\n\n\n"
            "def triple(x):\n    return 3 * x\n",
            "tests/test_triple.py": "import shinydep\n\nfrom mypkg.core import triple\n\n\n"
            "def test_triple():\n    assert triple(shinydep.TWO) == 6\n",
        },
        "Add triple",
    )
    row, _ = _replay(tmp_path, agents, repo, sha)
    assert row.status == "succeeded", row.failure_reason
    report = report_of(row)
    # The new test file cannot import `triple` yet: its one test did not run (an error).
    assert report["tests"]["red"] == {"passed": 0, "failed": 0, "error": 1, "skipped": 0}
    assert report["tests"]["green"]["passed"] == 2
    assert report["coverage"]["status"] == "measured", report["coverage"]


def test_broken_environment_stops_in_preflight_before_any_model_call(
    tmp_path: Path, agents: RosterAgents
) -> None:
    repo = create_repository(
        tmp_path / "flat",
        {
            ".gitignore": ".venv/\n",
            "calc.py": "def add(a, b):\n    return a + b\n",
            "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n"
            "    assert add(1, 2) == 3\n",
        },
    )
    make_venv(repo / ".venv", with_pytest=None)
    sha = _feature_commit(repo, {"calc.py": "def add(a, b):\n    return b + a\n"}, "Swap")
    row, requests = _replay(tmp_path, agents, repo, sha)
    assert row.status == "failed"
    assert "No module named pytest" in (row.failure_reason or "")
    assert "pip install pytest" in (row.failure_reason or "")
    assert requests == []  # no model call: nothing spent
    # The live view and `orchestra status` show the baseline's result, not "not run yet".
    latest = (tmp_path / "home" / "runs" / row.id / "tests" / "latest.json").read_text()
    assert json.loads(latest)["verdict"].startswith("preflight failed: ")
