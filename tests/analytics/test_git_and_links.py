"""Git history import (incremental) and links: exact from Orchestra's runs, by ancestry
otherwise."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestra.analytics import import_git_history, link_all
from orchestra.store import Database
from orchestra.store.tables.engine import RunRow
from orchestra.store.tables.insight import InsightCommitRow, InsightLinkRow
from tests.analytics.fixtures import (
    REPO,
    T0,
    deployment_status,
    github,
    pull_request,
    sqlite_database,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """SQLite only: what these tests check does not depend on the backend (the formulas'
    golden fixtures run on both)."""
    database = sqlite_database(tmp_path)
    yield database
    database.dispose()


def git(path: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "Alice",
        "GIT_AUTHOR_EMAIL": "Alice@acme.test",
        "GIT_COMMITTER_NAME": "Alice",
        "GIT_COMMITTER_EMAIL": "alice@acme.test",
        "GIT_AUTHOR_DATE": "2026-11-02T09:00:00+01:00",
        "GIT_COMMITTER_DATE": "2026-11-02T09:00:00+01:00",
        "HOME": str(path),
    }
    return subprocess.run(
        ["git", "-C", str(path), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def commit(path: Path, name: str, lines: int) -> str:
    (path / name).write_text("x\n" * lines)
    git(path, "add", name)
    git(path, "commit", "-q", "-m", f"add {name}")
    return git(path, "rev-parse", "HEAD")


def repo(tmp_path: Path) -> Path:
    path = tmp_path / "shop"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def links(db: Database) -> set[tuple[str, str, str, str, str]]:
    with db.session() as session:
        return {
            (r.src_kind, r.src_id, r.dst_kind, r.dst_id, r.method)
            for r in session.scalars(select(InsightLinkRow))
        }


def test_import_is_incremental_and_reads_authors_sizes_and_merges(
    tmp_path: Path, db: Database
) -> None:
    path = repo(tmp_path)
    first = commit(path, "a.txt", 10)
    result = import_git_history(db, REPO, path)
    assert (result.commits, result.merges) == (1, 0)
    assert import_git_history(db, REPO, path).commits == 0  # nothing new
    git(path, "checkout", "-q", "-b", "feature")
    commit(path, "b.txt", 3)
    git(path, "checkout", "-q", "main")
    commit(path, "c.txt", 2)
    git(path, "merge", "-q", "--no-ff", "feature", "-m", "merge feature")
    result = import_git_history(db, REPO, path)
    assert (result.commits, result.merges) == (3, 1)
    with db.session() as session:
        row = session.get(InsightCommitRow, (REPO, first))
        assert row is not None
        assert (row.author_email, row.additions, row.is_merge) == ("alice@acme.test", 10, False)
        assert row.authored_at == datetime(2026, 11, 2, 8, 0) or row.authored_at == datetime(
            2026, 11, 2, 8, 0, tzinfo=UTC
        )
        assert session.query(InsightCommitRow).count() == 4


def test_links_exact_from_the_run_and_by_ancestry_to_a_later_deployment(
    tmp_path: Path, db: Database
) -> None:
    path = repo(tmp_path)
    merged = commit(path, "a.txt", 5)
    later = commit(path, "b.txt", 5)
    import_git_history(db, REPO, path)
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / "report.json").write_text(json.dumps({"commits": [{"sha": merged, "message": "m"}]}))
    with db.session() as session:
        session.add(
            RunRow(
                id="run-1",
                task="t",
                pipeline="test-first",
                repo_path=str(path),
                branch="orchestra/run-1",
                status="succeeded",
                report_path=str(run_dir / "report.md"),
                created_at=T0,
                updated_at=T0,
                finished_at=T0,
            )
        )
    github(
        db,
        "pull_request",
        pull_request(1, merged=T0 + timedelta(hours=1), sha=merged, branch="orchestra/run-1"),
    )
    github(db, "pull_request", pull_request(2, merged=T0 + timedelta(hours=1), sha="9" * 40))
    github(db, "deployment_status", deployment_status(1, later, "success", T0 + timedelta(hours=2)))
    github(
        db,
        "deployment_status",
        deployment_status(2, later, "success", T0 + timedelta(hours=3), environment="staging"),
    )
    assert link_all(db) > 0
    found = links(db)
    change = f"github:{REPO}#1"
    assert ("run", "run-1", "change", change, "exact") in found
    assert ("run", "run-1", "commit", merged, "exact") in found
    assert ("change", change, "deployment", f"github:{REPO}:1", "ancestry") in found
    assert ("change", change, "deployment", f"github:{REPO}:2", "ancestry") in found  # staging
    assert not [f for f in found if f[1] == f"github:{REPO}#2"]  # its commit is not deployed
    assert link_all(db) == 0  # idempotent


def test_a_change_whose_first_deployment_failed_reaches_production_on_the_retry(
    db: Database,
) -> None:
    from orchestra.analytics import Asker, kpi_report, parse_period

    sha = "a" * 40
    github(db, "pull_request", pull_request(5, opened=T0, merged=T0 + timedelta(hours=1), sha=sha))
    github(db, "deployment_status", deployment_status(1, sha, "failure", T0 + timedelta(hours=2)))
    github(db, "deployment_status", deployment_status(2, sha, "success", T0 + timedelta(hours=4)))
    github(db, "deployment_status", deployment_status(3, sha, "success", T0 + timedelta(hours=9)))
    link_all(db)
    linked = {f[3] for f in links(db) if f[1] == f"github:{REPO}#5"}
    assert linked == {f"github:{REPO}:1", f"github:{REPO}:2"}  # not the later redeploy
    figures = kpi_report(
        db, Asker("root", frozenset({"admin"})), period=parse_period("2026-11")
    ).figures
    assert figures["lead_time_for_changes"].value == 4.0
    assert figures["change_failure_rate"].value == 1 / 3
