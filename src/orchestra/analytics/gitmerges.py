"""Time to merge from imported git history: per merge commit, the hours from the first
commit its branch brought in to the merge.

A merge's branch commits are those reachable from its other parents and not from its first
parent, found as ``git merge-base`` does: both sides are painted down in commit-time order
until only first-parent history is left to walk. Squash and rebase merges leave no merge
commit and so no sample; a period without merges has no git time to merge (unknown).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestra.analytics.dataset import aware
from orchestra.analytics.scope import Period, Scope
from orchestra.store.tables.insight import InsightCommitRow

_MAIN, _BRANCH = 1, 2


def _epoch(moment: datetime) -> float:
    return (aware(moment) or moment).timestamp()


def branch_commits(
    commits: dict[str, InsightCommitRow], merge: InsightCommitRow
) -> list[InsightCommitRow]:
    """The commits ``merge`` brought in: reachable from its second and later parents and
    not from its first (commits missing from the import are not walked)."""
    parents = merge.parents.split()
    paint: dict[str, int] = {}
    queue: list[tuple[float, str]] = []

    def push(sha: str, side: int) -> None:
        row = commits.get(sha)
        if row is None or paint.get(sha, 0) & side:
            return
        paint[sha] = paint.get(sha, 0) | side
        heapq.heappush(queue, (-_epoch(row.committed_at), sha))

    for i, sha in enumerate(parents):
        push(sha, _MAIN if i == 0 else _BRANCH)
    while queue and any(paint[sha] == _BRANCH for _, sha in queue):
        _, sha = heapq.heappop(queue)
        for parent in commits[sha].parents.split():
            push(parent, paint[sha])
    return [commits[sha] for sha, side in paint.items() if side == _BRANCH]


def _author(scope: Scope, row: InsightCommitRow) -> str | None:
    return scope.developer_of(row.author_email) or scope.developer_of(row.author_name)


def _samples(
    scope: Scope, period: Period, commits: dict[str, InsightCommitRow], repo: str
) -> Iterable[tuple[str, float]]:
    for merge in commits.values():
        if not merge.is_merge or not period.contains(merge.committed_at):
            continue
        brought = branch_commits(commits, merge)
        if not brought:
            continue
        first = min(brought, key=lambda r: _epoch(r.authored_at))
        if not scope.is_organisation and _author(scope, first) is None:
            continue
        hours = (_epoch(merge.committed_at) - _epoch(first.authored_at)) / 3600
        yield f"commit:{repo}@{merge.sha}", max(hours, 0.0)


def merge_time_pairs(session: Session, scope: Scope, period: Period) -> list[tuple[str, float]]:
    """Per merge commit made in ``period`` whose branch's first commit is by someone in
    ``scope``: (``commit:<repo>@<sha>``, hours from that first commit to the merge)."""
    by_repo: dict[str, dict[str, InsightCommitRow]] = {}
    for row in session.scalars(select(InsightCommitRow)):
        by_repo.setdefault(row.repo, {})[row.sha] = row
    pairs: list[tuple[str, float]] = []
    for repo, commits in sorted(by_repo.items()):
        pairs.extend(_samples(scope, period, commits, repo))
    return sorted(pairs)
