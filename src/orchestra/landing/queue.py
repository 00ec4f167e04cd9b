"""The merge queue's rows: adding a branch, listing, the per-repository lock, taking the
next entry.

One lander per repository at a time: the lock is a row of ``landing_locks`` keyed by the
repository, so taking it is an ``INSERT`` that only one process can make (the primary key
refuses the others, on SQLite and PostgreSQL alike). A lock older than its lease belongs to
a lander that died; it is taken over by a compare-and-set ``UPDATE``, which again only one
process can win.
"""

from __future__ import annotations

import difflib
import json
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from orchestra.landing.claims import overlaps, repository_key
from orchestra.landing.errors import LandingError
from orchestra.store import Database
from orchestra.store.tables.engine import RunRow
from orchestra.store.tables.landing import LandingEntryRow, LandingLockRow
from orchestra.tools import WorkspaceError, git

WAITING = frozenset({"queued", "landing"})
"""Statuses of an entry still in the queue."""
LEASE = timedelta(hours=1)
"""A lock not refreshed for this long belongs to a lander that died."""
RECENT = 500
"""Recent runs whose ids an unknown run's close matches are drawn from."""


@dataclass(frozen=True)
class QueueEntry:
    """One branch in a repository's merge queue and what became of it."""

    id: int
    repo: str
    branch: str
    onto: str
    status: str
    run_id: str | None = None
    reason: str | None = None
    files: tuple[str, ...] = ()
    """The files of a rebase conflict."""
    overlaps: dict[str, list[str]] | None = None
    """Other unlanded runs owning the same files when it was queued: run id -> files."""
    onto_before: str | None = None
    landed_commit: str | None = None
    requested_by: str = ""
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def of(cls, row: LandingEntryRow) -> QueueEntry:
        """The entry a row holds."""
        return cls(
            id=row.id,
            repo=row.repo,
            branch=row.branch,
            onto=row.onto,
            status=row.status,
            run_id=row.run_id,
            reason=row.reason,
            files=tuple(json.loads(row.files or "[]")),
            overlaps=json.loads(row.overlaps or "{}") or None,
            onto_before=row.onto_before,
            landed_commit=row.landed_commit,
            requested_by=row.requested_by,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready values."""
        return {
            "id": self.id,
            "repo": self.repo,
            "run_id": self.run_id,
            "branch": self.branch,
            "onto": self.onto,
            "status": self.status,
            "reason": self.reason,
            "files": list(self.files),
            "overlaps": self.overlaps or {},
            "onto_before": self.onto_before,
            "landed_commit": self.landed_commit,
            "requested_by": self.requested_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def holder_id() -> str:
    """A name for this lander, unique across processes and machines."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def enqueue(
    db: Database,
    repo: str,
    branch: str,
    onto: str,
    *,
    requested_by: str,
    run_id: str | None = None,
) -> QueueEntry:
    """Put ``branch`` at the end of ``repo``'s queue (refused if it is already waiting)."""
    key = repository_key(repo)
    check_branches(Path(key), branch, onto)
    shared = overlaps(db, run_id) if run_id else {}
    with db.session() as session:
        waiting = session.scalar(
            select(LandingEntryRow.id).where(
                LandingEntryRow.repo == key,
                LandingEntryRow.branch == branch,
                LandingEntryRow.status.in_(WAITING),
            )
        )
        if waiting is not None:
            raise LandingError(
                f"{branch} is already in the queue (entry {waiting})",
                hint="see it with `orchestra queue list`",
                status=409,
            )
        row = LandingEntryRow(
            repo=key,
            run_id=run_id,
            branch=branch,
            onto=onto,
            status="queued",
            files="[]",
            overlaps=json.dumps(shared, sort_keys=True),
            requested_by=requested_by,
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        return QueueEntry.of(row)


def queue_run(
    db: Database, run_id: str, repo: str, branch: str, onto: str, *, requested_by: str
) -> QueueEntry:
    """Queue ``run_id``'s ``branch`` to land on ``onto``, once: while an entry of the run
    waits in the queue it is that entry (a step replayed after a crash finds the entry it
    made, where :func:`enqueue` would refuse the branch as already queued)."""
    with db.session() as session:
        waiting = session.scalars(
            select(LandingEntryRow)
            .where(LandingEntryRow.run_id == run_id, LandingEntryRow.status.in_(WAITING))
            .order_by(LandingEntryRow.id)
            .limit(1)
        ).first()
        if waiting is not None:
            return QueueEntry.of(waiting)
    return enqueue(db, repo, branch, onto, requested_by=requested_by, run_id=run_id)


def check_branches(repo: Path, *names: str) -> None:
    """Refuse a folder that is not a git repository, or a branch that is not there."""
    if not git(repo, "rev-parse", "--git-dir", check=False).strip():
        raise LandingError(
            f"{repo} is not a git repository", hint="pass the repository's root folder"
        )
    for name in names:
        ref = f"refs/heads/{name}"
        valid = not name.startswith("-") and _ref_ok(repo, ref)
        if not valid or not git(repo, "rev-parse", "--verify", "--quiet", ref, check=False):
            raise LandingError(
                f"there is no branch {name!r} in {repo}",
                hint=f"list the branches with: git -C {repo} branch",
                status=404,
            )


def _ref_ok(repo: Path, ref: str) -> bool:
    try:
        git(repo, "check-ref-format", ref)
    except WorkspaceError:
        return False
    return True


def find_run(db: Database, ref: str) -> str:
    """The id of the run ``ref`` names (its id or a unique prefix of it); refused with the
    closest recent ids when there is none."""
    with db.session() as session:
        if session.get(RunRow, ref) is not None:
            return ref
        prefixed = list(
            session.scalars(
                select(RunRow.id).where(RunRow.id.startswith(ref, autoescape=True)).limit(2)
            )
        )
        recent = list(
            session.scalars(select(RunRow.id).order_by(RunRow.created_at.desc()).limit(RECENT))
        )
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        raise LandingError(
            f"{ref!r} names more than one run", hint="give more of the run's id", status=404
        )
    close = difflib.get_close_matches(ref, recent, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "list runs with `orchestra runs`"
    raise LandingError(f"no run {ref!r}", hint=hint, status=404)


def target_branch(repo: Path, onto: str | None) -> str:
    """The branch to land on: ``onto``, else the checkout's current branch, else ``main``."""
    if onto:
        return onto
    return git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip() or "main"


def run_branch(db: Database, run_id: str) -> tuple[str, str]:
    """(repository, branch) of a finished run; refused unless it succeeded."""
    with db.session() as session:
        run = session.get(RunRow, run_id)
    if run is None:
        raise LandingError(f"no run {run_id}", hint="list runs with `orchestra runs`", status=404)
    if run.status != "succeeded" or not run.branch:
        raise LandingError(
            f"run {run_id} is {run.status}: only a run that succeeded can land",
            hint=f"its branch stays for you to look at: {run.branch or 'none was created'}",
            status=409,
        )
    return run.repo_path, run.branch


def entries(
    db: Database, repo: str | None = None, *, status: str | None = None
) -> list[QueueEntry]:
    """The queue's entries in order (one repository's, and of one status, when given)."""
    query = select(LandingEntryRow).order_by(LandingEntryRow.id)
    if repo is not None:
        query = query.where(LandingEntryRow.repo == repository_key(repo))
    if status is not None:
        query = query.where(LandingEntryRow.status == status)
    with db.session() as session:
        return [QueueEntry.of(row) for row in session.scalars(query)]


def get_entry(db: Database, entry_id: int) -> QueueEntry:
    """One entry; 404 when there is none."""
    with db.session() as session:
        row = session.get(LandingEntryRow, entry_id)
        if row is None:
            raise LandingError(
                f"no queue entry {entry_id}",
                hint="`orchestra queue list` shows the entries and their ids",
                status=404,
            )
        return QueueEntry.of(row)


def drop(db: Database, entry_id: int) -> QueueEntry:
    """Remove an entry that is not being landed right now (a person dealt with it)."""
    entry = get_entry(db, entry_id)
    if entry.status == "landing":
        raise LandingError(
            f"entry {entry_id} is being landed right now", hint="wait for it", status=409
        )
    with db.session() as session:
        session.execute(delete(LandingEntryRow).where(LandingEntryRow.id == entry_id))
    return entry


def acquire(db: Database, repo: str, holder: str, *, lease: timedelta = LEASE) -> bool:
    """Become ``repo``'s one lander; ``False`` when another lander holds a live lock."""
    key = repository_key(repo)
    now = datetime.now(UTC)
    try:
        with db.session() as session:
            session.add(LandingLockRow(repo=key, holder=holder, acquired_at=now))
    except IntegrityError:
        with db.session() as session:
            taken = session.execute(
                update(LandingLockRow)
                .where(LandingLockRow.repo == key, LandingLockRow.acquired_at < now - lease)
                .values(holder=holder, acquired_at=now)
            )
            if getattr(taken, "rowcount", 0) != 1:
                return False
    # Only the lock's holder marks entries ``landing``: any found now belong to a lander
    # that died (or crashed) before finishing them. The target moves only by a
    # compare-and-set, so landing them again from the start is safe.
    with db.session() as session:
        session.execute(
            update(LandingEntryRow)
            .where(LandingEntryRow.repo == key, LandingEntryRow.status == "landing")
            .values(status="queued", started_at=None)
        )
    return True


def refresh(db: Database, repo: str, holder: str) -> bool:
    """Renew the lease; ``False`` if the lock is no longer ``holder``'s."""
    with db.session() as session:
        done = session.execute(
            update(LandingLockRow)
            .where(LandingLockRow.repo == repository_key(repo), LandingLockRow.holder == holder)
            .values(acquired_at=datetime.now(UTC))
        )
        return getattr(done, "rowcount", 0) == 1


def release(db: Database, repo: str, holder: str) -> None:
    """Give the lock up (only ``holder``'s own)."""
    with db.session() as session:
        session.execute(
            delete(LandingLockRow).where(
                LandingLockRow.repo == repository_key(repo), LandingLockRow.holder == holder
            )
        )


def take_next(db: Database, repo: str) -> QueueEntry | None:
    """Mark the oldest queued entry of ``repo`` as ``landing`` (the lock holder only)."""
    key = repository_key(repo)
    with db.session() as session:
        row = session.scalars(
            select(LandingEntryRow)
            .where(LandingEntryRow.repo == key, LandingEntryRow.status == "queued")
            .order_by(LandingEntryRow.id)
            .limit(1)
        ).first()
        if row is None:
            return None
        row.status = "landing"
        row.started_at = datetime.now(UTC)
        return QueueEntry.of(row)


def finish(db: Database, entry_id: int, status: str, **values: Any) -> QueueEntry:
    """Record the outcome of landing an entry."""
    if "files" in values:
        values["files"] = json.dumps(list(values["files"]))
    with db.session() as session:
        row = session.get(LandingEntryRow, entry_id)
        if row is None:
            raise LandingError(f"queue entry {entry_id} vanished while landing", status=404)
        row.status = status
        row.finished_at = datetime.now(UTC)
        for name, value in values.items():
            setattr(row, name, value)
        return QueueEntry.of(row)
