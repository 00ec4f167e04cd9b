"""The merge queue's API equivalents of ``orchestra queue add / run / drop`` and
``orchestra land``: repositories named through ``server.repositories``; the lander works in
the background after a 202 (the in-process client waits for it, so the entry has landed by
the time the next request is made); a viewer is refused; each change and refusal audited
under the caller's name; bad input answers a clear 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestra.config import OrchestraConfig
from orchestra.store import open_database
from orchestra.store.tables.engine import RunRow
from tests.landing.conftest import CALC, TESTS, run_git
from tests.server.api.conftest import ORG, Api, make_api

pytestmark = pytest.mark.anyio


def _repository(root: Path) -> Path:
    """``calc`` on main with passing tests, and branches: ``ann`` and ``bob`` change the
    same line (the second to land conflicts), ``red`` adds a failing test."""
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "calc"\nversion = "0"\n')
    (root / "calc.py").write_text(CALC)
    (root / "tests" / "test_calc.py").write_text(TESTS)
    (root / ".gitignore").write_text("__pycache__/\n")
    run_git(root, "init", "-q", "-b", "main")
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "base")
    for name, text in (("ann", "b + a"), ("bob", "(a + b)")):
        run_git(root, "checkout", "-q", "-b", name, "main")
        (root / "calc.py").write_text(CALC.replace("a + b", text))
        run_git(root, "commit", "-qam", name)
        run_git(root, "checkout", "-q", "main")
    run_git(root, "checkout", "-q", "-b", "red", "main")
    (root / "tests" / "test_red.py").write_text("def test_red():\n    assert False\n")
    run_git(root, "add", "-A")
    run_git(root, "commit", "-qm", "red")
    run_git(root, "checkout", "-q", "main")
    return root


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Api]:
    repo = _repository(tmp_path / "calc")
    _repository(tmp_path / "elsewhere")  # on this machine, not on the allow-list
    config = OrchestraConfig.model_validate(
        {"organisation": ORG, "server": {"repositories": {"calc": str(repo)}}}
    )
    yield from make_api(tmp_path / "server", config)


def _add_run(tmp_path: Path, run_id: str, repo: Path, status: str = "succeeded") -> None:
    db = open_database(f"sqlite:///{tmp_path / 'server' / 'orchestra.db'}")
    now = datetime.now(UTC)
    with db.session() as session:
        session.add(
            RunRow(
                id=run_id,
                task="swap the operands",
                repo_path=str(repo),
                branch="ann",
                status=status,
                created_at=now,
                updated_at=now,
            )
        )
    db.dispose()


def _audited(api: Api, action: str) -> list[Any]:
    return [e for e in api.accounting.audit.list(limit=500) if e.action == action]


async def test_a_branch_queued_over_the_api_lands_in_the_background(
    served: Api, tmp_path: Path
) -> None:
    repo = tmp_path / "calc"
    before = run_git(repo, "rev-parse", "main")
    async with served.client("dev") as client:
        queued = await client.post("/api/v1/queue", json={"repository": "calc", "branch": "ann"})
        assert queued.status_code == 202, queued.text
        entry = queued.json()
        assert entry["status"] == "queued" and entry["requested_by"] == "developer:dev"
        landed = (await client.get(f"/api/v1/queue/{entry['id']}")).json()
    assert landed["status"] == "landed", landed
    assert run_git(repo, "rev-parse", "main") == landed["landed_commit"] != before
    [audit] = _audited(served, "queue.add")
    assert audit.actor == "developer:dev" and audit.target == str(entry["id"])
    assert audit.details["repository"] == "calc" and str(repo) not in str(audit.details)


async def test_queue_run_works_through_the_waiting_entries_and_drop_removes_one(
    served: Api, tmp_path: Path
) -> None:
    async with served.client("lena") as client:
        ids = []
        for name in ("ann", "bob", "red"):
            body = {"repository": "calc", "branch": name, "land": False}
            answer = await client.post("/api/v1/queue", json=body)
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])
        again = await client.post("/api/v1/queue", json={"repository": "calc", "branch": "ann"})
        assert again.status_code == 409 and "already in the queue" in again.text
        started = await client.post("/api/v1/queue/run", json={"repository": "calc"})
        assert started.status_code == 202, started.text
        assert started.json() == {"repository": "calc", "queued": ids}
        listed = (await client.get("/api/v1/queue")).json()["items"]
        assert [(e["branch"], e["status"]) for e in listed] == [
            ("ann", "landed"),
            ("bob", "conflict"),
            ("red", "failed"),
        ]
        assert listed[1]["files"] == ["calc.py"] and "test_red" in listed[2]["reason"]
        dropped = await client.delete(f"/api/v1/queue/{ids[1]}")
        assert dropped.status_code == 200 and dropped.json()["branch"] == "bob"
        gone = await client.get(f"/api/v1/queue/{ids[1]}")
        nothing = await client.post("/api/v1/queue/run", json={"repository": "calc"})
    assert gone.status_code == 404
    assert nothing.json() == {"repository": "calc", "queued": []}
    assert [e.actor for e in _audited(served, "queue.run")] == ["developer:lena"] * 2
    [drop] = _audited(served, "queue.drop")
    assert drop.target == str(ids[1]) and drop.details["status"] == "conflict"


async def test_a_run_that_succeeded_lands_by_its_id_or_a_prefix(
    served: Api, tmp_path: Path
) -> None:
    _add_run(tmp_path, "run-7f3a9c", tmp_path / "calc")
    _add_run(tmp_path, "run-failed", tmp_path / "calc", status="failed")
    async with served.client("dev") as client:
        landed = await client.post("/api/v1/runs/run-7f/land", json={})
        unknown = await client.post("/api/v1/runs/run-7f3a9d/land", json={})
        failed = await client.post("/api/v1/runs/run-failed/land", json={})
    assert landed.status_code == 202, landed.text
    assert landed.json()["run_id"] == "run-7f3a9c"
    assert unknown.status_code == 404 and "run-7f3a9c" in unknown.json()["error"]["hint"]
    assert failed.status_code == 409 and "only a run that succeeded" in failed.text
    [audit] = _audited(served, "queue.add")
    assert audit.details["run_id"] == "run-7f3a9c" and audit.details["repository"] == "calc"


async def test_a_viewer_is_refused_and_nothing_is_queued(served: Api) -> None:
    async with served.client("vic") as client:
        answers = [
            await client.post("/api/v1/queue", json={"repository": "calc", "branch": "ann"}),
            await client.post("/api/v1/queue/run", json={"repository": "calc"}),
            await client.post("/api/v1/runs/x/land", json={}),
            await client.delete("/api/v1/queue/1"),
        ]
        listed = await client.get("/api/v1/queue")
    assert [a.status_code for a in answers] == [403] * 4
    assert all("may not land" in a.json()["error"]["message"] for a in answers)
    assert listed.status_code == 200 and listed.json()["items"] == []


async def test_bad_input_gets_a_clear_4xx_naming_what(served: Api, tmp_path: Path) -> None:
    _add_run(tmp_path, "run-elsewhere", tmp_path / "elsewhere")
    async with served.client("dev") as client:
        typo = await client.post("/api/v1/queue", json={"repository": "clac", "branch": "ann"})
        path = await client.post(
            "/api/v1/queue", json={"repository": str(tmp_path / "calc"), "branch": "ann"}
        )
        branch = await client.post("/api/v1/queue", json={"repository": "calc", "branch": "nope"})
        option = await client.post(
            "/api/v1/queue", json={"repository": "calc", "branch": "--upload-pack=x"}
        )
        spaced = await client.post("/api/v1/queue", json={"repository": "calc", "branch": "a b"})
        extra = await client.post("/api/v1/queue/run", json={"repository": "calc", "repo": "/"})
        outside = await client.post("/api/v1/runs/run-elsewhere/land", json={})
        not_a_number = await client.delete("/api/v1/queue/first")
        missing = await client.delete("/api/v1/queue/999")
    assert typo.status_code == 404 and typo.json()["error"]["hint"] == "did you mean calc?"
    assert path.status_code == 404
    assert branch.status_code == 404 and "no branch 'nope'" in branch.text
    assert option.status_code == 404 and spaced.status_code == 400
    assert extra.status_code == 400 and "repo" in extra.text
    assert outside.status_code == 403 and str(tmp_path) not in outside.text
    assert not_a_number.status_code == 400 and missing.status_code == 404
    refused = _audited(served, "queue.refused")
    assert {e.target for e in refused} >= {"clac", "run run-elsewhere"}
    assert all(e.actor == "developer:dev" for e in refused)
