"""``GET /api/v1/queue``: the merge queue as the CLI lists it, for readers of runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.landing import Lander, enqueue
from orchestra.store import open_database
from tests.landing.conftest import CALC, TESTS, run_git
from tests.server.api.conftest import Api

pytestmark = pytest.mark.anyio


async def test_the_queue_lists_entries_with_their_reason_and_files(
    api: Api, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[project]\nname = "calc"\nversion = "0"\n')
    (repo / "calc.py").write_text(CALC)
    (repo / "tests" / "test_calc.py").write_text(TESTS)
    run_git(repo, "init", "-q", "-b", "main")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "base")
    for name, text in (("ann", "b + a"), ("bob", "(a + b)")):
        run_git(repo, "checkout", "-q", "-b", name, "main")
        (repo / "calc.py").write_text(CALC.replace("a + b", text))
        run_git(repo, "commit", "-qam", name)
        run_git(repo, "checkout", "-q", "main")
    db = open_database(f"sqlite:///{tmp_path / 'orchestra.db'}")
    for name in ("ann", "bob"):
        enqueue(db, str(repo), name, "main", requested_by="dev")
    Lander(db).process(str(repo))
    db.dispose()

    async with api.client("vic") as client:
        listed = await client.get("/api/v1/queue")
        conflicts = await client.get("/api/v1/queue", params={"status": "conflict"})
        bad = await client.get("/api/v1/queue", params={"status": "merged"})
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [(i["branch"], i["status"]) for i in items] == [("ann", "landed"), ("bob", "conflict")]
    [conflict] = conflicts.json()["items"]
    assert conflict["files"] == ["calc.py"] and "rebase" in conflict["reason"]
    assert bad.status_code == 400
