"""Two lander processes on one queue; the files runs own; the commands."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestra.cli.app import app
from orchestra.landing import (
    acquire,
    claimed_files,
    enqueue,
    entries,
    overlaps,
    record_claims,
    release,
)
from orchestra.store import Database, open_database
from orchestra.store.tables.engine import RunRow
from orchestra.store.tables.landing import LandingLockRow
from tests.landing.conftest import CALC, BranchMaker, run_git

ROOT = Path(__file__).resolve().parents[2]


def _run(db: Database, run_id: str, repo: Path, status: str, branch: str | None = None) -> None:
    now = datetime.now(UTC)
    with db.session() as session:
        session.add(
            RunRow(
                id=run_id,
                task="t",
                repo_path=str(repo),
                status=status,
                branch=branch,
                created_at=now,
                updated_at=now,
            )
        )


def test_two_lander_processes_one_wins_each_entry_lands_once(
    database: Database, database_url: str, repo: Path, branch: BranchMaker
) -> None:
    names = [f"feature-{i}" for i in range(3)]
    for name in names:
        branch(name, {f"{name}.py": f"NAME = {name!r}\n"})
        enqueue(database, str(repo), name, "main", requested_by="ann")
    start = time.time() + 3
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.landing.land_worker",
                database_url,
                str(repo),
                str(start),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [json.loads(w.communicate(timeout=300)[0]) for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    landed = sorted(entry_id for out in outputs for entry_id, _ in out)
    assert landed == sorted(e.id for e in entries(database, str(repo)))  # each once
    assert all(e.status == "landed" for e in entries(database, str(repo)))
    log = run_git(repo, "log", "--format=%s", "--first-parent", "main").splitlines()
    assert len(log) == 4 and len(set(log)) == 4  # three landings, none twice
    # The entries landed in queue order, each on the one before.
    chain = entries(database, str(repo))
    assert all(b.onto_before == a.landed_commit for a, b in itertools.pairwise(chain))


def test_the_lock_is_one_holders_and_a_dead_holders_lock_is_taken_over(
    database: Database, repo: Path
) -> None:
    assert acquire(database, str(repo), "a")
    assert not acquire(database, str(repo), "b")
    release(database, str(repo), "b")  # not b's: nothing happens
    assert not acquire(database, str(repo), "b")
    with database.session() as session:
        lock = session.get(LandingLockRow, str(repo.resolve()))
        assert lock is not None
        lock.acquired_at = datetime(2000, 1, 1, tzinfo=UTC)
    assert acquire(database, str(repo), "b")  # a's lease ran out
    assert not acquire(database, str(repo), "a")
    release(database, str(repo), "b")
    assert acquire(database, str(repo), "a")


def test_runs_owning_the_same_file_see_each_other_until_one_lands_or_ends(
    database: Database, repo: Path, branch: BranchMaker
) -> None:
    branch("r1-branch", {"r1.py": "R = 1\n"})
    branch("r2-branch", {"r2.py": "R = 2\n"})
    for run_id, status in (("r1", "running"), ("r2", "running"), ("r3", "failed")):
        _run(database, run_id, repo, status)
    record_claims(database, "r1", repo, ["calc.py", "tests/test_calc.py"])
    record_claims(database, "r3", repo, ["calc.py"])  # failed: never lands, does not count
    shared = record_claims(database, "r2", repo, ["calc.py", "other.py"])
    assert shared == {"r1": ["calc.py"]}
    assert overlaps(database, "r1") == {"r2": ["calc.py"]}
    assert claimed_files(database, "r2") == ["calc.py", "other.py"]
    # A replayed plan records the same claims again, not twice.
    assert record_claims(database, "r2", repo, ["calc.py", "other.py"]) == shared
    # Once r1 has landed, r2 has nobody to coordinate with.
    entry = enqueue(database, str(repo), "r1-branch", "main", requested_by="x", run_id="r1")
    from orchestra.landing import queue

    queue.finish(database, entry.id, "landed")
    assert overlaps(database, "r2") == {}
    # The queue records, with an entry, whom it shared files with when it was queued.
    queued = enqueue(database, str(repo), "r2-branch", "main", requested_by="x", run_id="r2")
    assert queued.overlaps is None  # r1 landed already


def test_land_and_queue_commands(
    tmp_path: Path, repo: Path, branch: BranchMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'orchestra.db'}"
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("ORCHESTRA_DATABASE_URL", url)
    monkeypatch.setenv("ORCHESTRA_DEVELOPER", "ann")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "orchestra.yaml").write_text(
        "organisation: {name: acme, developers: "
        "[{name: ann, role: developer}, {name: vic, role: viewer}]}\n"
    )
    db = open_database(url)
    branch("orchestra/run-ann-1", {"calc.py": CALC.replace("a + b", "b + a")})
    branch("bob", {"calc.py": CALC.replace("a + b", "(a + b)")})
    _run(db, "run-ann-1", repo, "succeeded", branch="orchestra/run-ann-1")
    _run(db, "run-cid-2", repo, "failed", branch="orchestra/run-cid-2")
    db.dispose()
    cli = CliRunner()

    # A viewer may not land (the same role check as POST /api/v1/runs/{id}/land).
    viewer = cli.invoke(app, ["land", "run-ann"], env={"ORCHESTRA_DEVELOPER": "vic"})
    assert viewer.exit_code == 2 and "may not land" in viewer.output, viewer.output

    landed = cli.invoke(app, ["land", "run-ann", "--json"])
    assert landed.exit_code == 0, landed.output
    assert json.loads(landed.output)["status"] == "landed"
    assert "b + a" in (repo / "calc.py").read_text()

    refused = cli.invoke(app, ["land", "run-cid-2"])
    assert refused.exit_code == 2 and "only a run that succeeded can land" in refused.output

    conflict = cli.invoke(app, ["queue", "add", "bob", "--repo", str(repo)])
    assert conflict.exit_code == 1, conflict.output
    assert "conflict" in conflict.output and "conflict: calc.py" in conflict.output

    listed = cli.invoke(app, ["queue", "list", "--json", "--repo", str(repo)])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(r["branch"], r["status"], r["files"]) for r in rows] == [
        ("orchestra/run-ann-1", "landed", []),
        ("bob", "conflict", ["calc.py"]),
    ]
    assert rows[0]["requested_by"] == "developer:ann"

    dropped = cli.invoke(app, ["queue", "drop", str(rows[1]["id"])])
    assert dropped.exit_code == 0, dropped.output
    unknown = cli.invoke(app, ["queue", "drop", "999"])
    assert unknown.exit_code == 2 and "no queue entry 999" in unknown.output
    assert "fix:" in unknown.output


def test_the_commands_about_recorded_state_create_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("ORCHESTRA_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    for argv in (["queue", "list"], ["land", "run-x"]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2 and "no Orchestra database" in result.output, argv
    assert not (tmp_path / "state" / "orchestra.db").exists()
