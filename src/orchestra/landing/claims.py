"""Which files each run's plan owns, and which other unlanded runs own the same files.

Recorded when a run's plan is made (:func:`record_claims`). Two runs owning one file are
not stopped: the later to land is rebased onto the earlier's landed change and its tests
run again by the merge queue before main moves (``docs/merge-queue.md``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select

from orchestra.store import Database
from orchestra.store.tables.engine import RunRow
from orchestra.store.tables.landing import FileClaimRow, LandingEntryRow

ENDED = frozenset({"failed", "cancelled"})
"""Run statuses whose claims no longer count: the run will never land."""


def repository_key(repo: str | Path) -> str:
    """The key a repository's claims and queue go under: its resolved path."""
    return str(Path(repo).expanduser().resolve())


def record_claims(
    db: Database, run_id: str, repo: str | Path, paths: Iterable[str]
) -> dict[str, list[str]]:
    """Record that ``run_id`` owns ``paths`` in ``repo`` (replacing what it owned before: a
    replayed plan records the same); returns :func:`overlaps` for it."""
    key = repository_key(repo)
    now = datetime.now(UTC)
    with db.session() as session:
        session.execute(delete(FileClaimRow).where(FileClaimRow.run_id == run_id))
        for path in sorted(set(paths)):
            session.add(FileClaimRow(run_id=run_id, path=path, repo=key, created_at=now))
    return overlaps(db, run_id)


def overlaps(db: Database, run_id: str) -> dict[str, list[str]]:
    """Other runs of the same repository that own a file ``run_id`` owns and may still land
    (neither failed, cancelled nor landed): run id -> the shared files, sorted."""
    mine = FileClaimRow.__table__.alias("mine")
    theirs = FileClaimRow.__table__.alias("theirs")
    landed = select(LandingEntryRow.run_id).where(
        LandingEntryRow.status == "landed", LandingEntryRow.run_id.is_not(None)
    )
    query = (
        select(theirs.c.run_id, theirs.c.path)
        .join(mine, (mine.c.repo == theirs.c.repo) & (mine.c.path == theirs.c.path))
        .outerjoin(RunRow, RunRow.id == theirs.c.run_id)
        .where(mine.c.run_id == run_id, theirs.c.run_id != run_id)
        .where((RunRow.status.is_(None)) | (RunRow.status.not_in(ENDED)))
        .where(theirs.c.run_id.not_in(landed))
        .order_by(theirs.c.run_id, theirs.c.path)
    )
    found: dict[str, list[str]] = {}
    with db.session() as session:
        for other, path in session.execute(query):
            found.setdefault(other, []).append(path)
    return found


def claimed_files(db: Database, run_id: str) -> list[str]:
    """The files ``run_id``'s plan owns, sorted."""
    with db.session() as session:
        rows = session.scalars(
            select(FileClaimRow.path).where(FileClaimRow.run_id == run_id).order_by("path")
        )
        return list(rows)
