"""Two real test-first runs on one repository, their plans owning the same files: the
coordination is recorded, and both branches go through the merge queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestra.demo import scripted_stack
from orchestra.landing import Lander, claimed_files, enqueue, entries, overlaps
from orchestra.testing.scripted import SAMPLE_TASK, create_sample_repository
from orchestra.tools.workspace import git
from tests.repository.fixtures import load_pipeline_agents

pytestmark = pytest.mark.slow


def test_two_runs_sharing_files_are_coordinated_and_land_through_the_queue(
    tmp_path: Path,
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    base = git(repo, "rev-parse", "main").strip()
    agents = load_pipeline_agents(tmp_path / "agents")
    with scripted_stack(tmp_path / "home", agents=agents) as stack:
        first = stack.runtime.start_run(SAMPLE_TASK, repo)
        second = stack.runtime.start_run(SAMPLE_TASK, repo)
        rows = [stack.runtime.wait(r, timeout_s=400) for r in (first, second)]
        services = stack.runtime.services
        db = services.database
        assert [r.status for r in rows] == ["succeeded", "succeeded"]
        owned = claimed_files(db, first)
        assert "inventory/stock.py" in owned and owned == claimed_files(db, second)
        # Each names the other: both own the same files and neither has landed.
        assert overlaps(db, first) == {second: owned}
        assert overlaps(db, second) == {first: owned}
        noted = [
            json.loads(p.read_text())
            for p in services.artifacts.run_dir(first).parent.glob("*/coordination.json")
        ]
        assert noted, "the run that planned second records whom it shares files with"

        entries = [
            enqueue(db, str(repo), str(r.branch), "main", requested_by="ann", run_id=r.id)
            for r in rows
        ]
        assert entries[1].overlaps == {first: owned}
        done = Lander(db, environment=lambda r: services.test_environment(str(r))).process(
            str(repo)
        )
        assert [e.status for e in done] == ["landed", "landed"]
        assert git(repo, "rev-parse", "main").strip() == done[0].landed_commit != base
        # The scripted model wrote the same change twice: rebased onto the first, the
        # second's commits are already on main, and main does not move again.
        assert done[1].landed_commit == done[0].landed_commit
        assert "already on main" in (done[1].reason or "")
        assert overlaps(db, second) == {}


def test_a_run_that_succeeds_lands_by_itself_with_land_on_success(
    tmp_path: Path, database_url: str
) -> None:
    """On SQLite and on PostgreSQL (DBOS's steps and the queue's lock rows there)."""
    (tmp_path / "home").mkdir()  # DBOS's SQLite system database goes there
    repo = create_sample_repository(tmp_path / "repo")
    base = git(repo, "rev-parse", "main").strip()
    agents = load_pipeline_agents(tmp_path / "agents")
    with scripted_stack(
        tmp_path / "home",
        agents=agents,
        extra_yaml="engine: {land_on_success: true}\n",
        database_url=database_url,
    ) as stack:
        run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
        row = stack.runtime.wait(run_id, timeout_s=400)
        db = stack.runtime.services.database
        assert row.status == "succeeded", row.failure_reason
        # Landed before the run ended: rebased onto main, tested there, fast-forwarded.
        (entry,) = entries(db, str(repo))
        assert (entry.run_id, entry.status, entry.onto) == (run_id, "landed", "main")
        assert entry.requested_by == "engine.land_on_success"
        assert git(repo, "rev-parse", "main").strip() == entry.landed_commit != base
        assert row.phase == "done"


def test_a_run_whose_branch_the_queue_refuses_still_succeeds(tmp_path: Path) -> None:
    """Someone queued the run's branch already: the run is not queued a second time (the
    queue's 409), and that is no reason to fail a run whose gates all passed."""
    repo = create_sample_repository(tmp_path / "repo")
    run_id = "run-queued-by-hand"
    git(repo, "branch", f"orchestra/{run_id}")  # the branch the run will work on
    agents = load_pipeline_agents(tmp_path / "agents")
    with scripted_stack(
        tmp_path / "home", agents=agents, extra_yaml="engine: {land_on_success: true}\n"
    ) as stack:
        db = stack.runtime.services.database
        by_hand = enqueue(db, str(repo), f"orchestra/{run_id}", "main", requested_by="ann")
        stack.runtime.start_run(SAMPLE_TASK, repo, run_id=run_id)
        row = stack.runtime.wait(run_id, timeout_s=400)
        assert row.status == "succeeded", row.failure_reason
        assert [(e.id, e.status) for e in entries(db, str(repo))] == [(by_hand.id, "queued")]
