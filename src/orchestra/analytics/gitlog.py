"""A repository's history from ``git log``, imported incrementally.

Each import reads the commits reachable from any ref but not from the tips the previous
import stopped at, so a second import of an unchanged repository reads nothing. Commit
ancestry (``git merge-base --is-ancestor``) links changes to the deployments that carry
them where no exact link exists.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestra.analytics.errors import AnalyticsError
from orchestra.store import Database
from orchestra.store.tables.insight import InsightCommitRow, InsightGitCursorRow

_RECORD, _FIELD = "\x1e", "\x1f"
_FORMAT = _FIELD.join(["%H", "%P", "%an", "%ae", "%aI", "%cI", "%s"])


def _git(path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            ["git", "-C", str(path), *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            check=False,
        )
    except FileNotFoundError as exc:
        raise AnalyticsError("git is not installed", hint="install git") from exc
    if check and result.returncode != 0:
        raise AnalyticsError(
            f"git {args[0]} failed in {path}: {result.stderr.strip()[:300]}",
            hint="give the path of a git repository (its working tree or .git folder)",
        )
    return result


def is_ancestor(path: Path, ancestor: str, descendant: str) -> bool:
    """Whether commit ``ancestor`` is reachable from ``descendant`` in the repository."""
    result = _git(path, "merge-base", "--is-ancestor", ancestor, descendant, check=False)
    return result.returncode == 0


@dataclass(frozen=True)
class GitImport:
    """What one import of a repository's history read."""

    repo: str
    commits: int
    """New commits stored."""
    merges: int
    tips: tuple[str, ...]


def _tips(path: Path) -> tuple[str, ...]:
    refs = _git(path, "for-each-ref", "--format=%(objectname)").stdout.split()
    head = _git(path, "rev-parse", "--verify", "-q", "HEAD", check=False).stdout.strip()
    return tuple(sorted(set(refs) | ({head} if head else set())))


def _parse(repo: str, text: str) -> list[InsightCommitRow]:
    rows: list[InsightCommitRow] = []
    for chunk in text.split(_RECORD)[1:]:
        header, _, numstat = chunk.partition("\n")
        sha, parents, name, email, authored, committed, subject = header.split(_FIELD, 6)
        added = deleted = 0
        for line in numstat.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
                added, deleted = added + int(parts[0]), deleted + int(parts[1])
        rows.append(
            InsightCommitRow(
                repo=repo,
                sha=sha,
                author_name=name,
                author_email=email.lower(),
                authored_at=datetime.fromisoformat(authored).astimezone(UTC),
                committed_at=datetime.fromisoformat(committed).astimezone(UTC),
                parents=parents,
                is_merge=len(parents.split()) > 1,
                additions=added,
                deletions=deleted,
                subject=subject,
            )
        )
    return rows


def import_git_history(db: Database, repo: str, path: Path) -> GitImport:
    """Store the commits of the repository at ``path`` (named ``repo``, as its webhooks
    name it: ``owner/name``) that the previous import did not read."""
    tips = _tips(path)
    with db.session() as session:
        cursor = session.get(InsightGitCursorRow, repo)
        known = cursor.tips.split() if cursor is not None else []
    if not tips:
        return GitImport(repo, 0, 0, tips)
    args = ["log", "--all", "--numstat", f"--format={_RECORD}{_FORMAT}"]
    if known:
        # A tip that no longer exists (history rewritten) cannot bound the walk: drop it.
        present = [t for t in known if _git(path, "cat-file", "-e", t, check=False).returncode == 0]
        args += ["--not", *present]
    rows = _parse(repo, _git(path, *args).stdout)
    with db.session() as session:
        fresh = [row for row in rows if session.get(InsightCommitRow, (repo, row.sha)) is None]
        session.add_all(fresh)
        if cursor is None:
            cursor = InsightGitCursorRow(repo=repo)
            session.add(cursor)
        else:
            cursor = session.merge(cursor)
        cursor.path, cursor.tips = str(path), " ".join(tips)
        cursor.imported_at = datetime.now(UTC)
    return GitImport(repo, len(fresh), sum(1 for row in fresh if row.is_merge), tips)
