"""Links between the entity streams: exact where Orchestra made them, by commit ancestry
otherwise; never guessed from timing.

- run → change: the change's branch is the branch the run made (``orchestra/<run id>``);
- run → commit: the commits the run's report lists;
- change → deployment: per environment, the deployments of the change's merge commit
  (``exact``) or of a commit it is an ancestor of (``ancestry``), from the earliest up to
  the first that succeeded;
- incident → change: the incident names the change (``#12`` on GitHub, ``!12`` on GitLab);
- incident → deployment: the incident names the deployed commit (``exact``), a commit the
  deployment carries (``ancestry``), or a change (the change's deployments, ``exact``).

An incident that names nothing is not linked: it counts for time to restore, not for the
change failure rate (which counts failed deployments, never incidents).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestra.analytics.gitlog import is_ancestor
from orchestra.store import Database
from orchestra.store.tables.engine import RunRow
from orchestra.store.tables.insight import (
    InsightChangeRow,
    InsightDeploymentRow,
    InsightGitCursorRow,
    InsightIncidentRow,
    InsightLinkRow,
)

_SHA = re.compile(r"\b[0-9a-f]{7,40}\b")


def _link(session: Session, src: tuple[str, str], dst: tuple[str, str], method: str) -> bool:
    key = (src[0], src[1], dst[0], dst[1])
    if session.get(InsightLinkRow, key) is not None:
        return False
    session.add(
        InsightLinkRow(
            src_kind=src[0], src_id=src[1], dst_kind=dst[0], dst_id=dst[1], method=method
        )
    )
    session.flush()
    return True


def _report_commits(run: RunRow) -> list[str]:
    if not run.report_path:
        return []
    path = Path(run.report_path).with_name("report.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    commits = data.get("commits") if isinstance(data, dict) else None
    return [str(c["sha"]) for c in commits or [] if isinstance(c, dict) and "sha" in c]


def _link_runs(session: Session) -> int:
    made = 0
    changes_by_branch: dict[str, list[str]] = defaultdict(list)
    for change in session.scalars(
        select(InsightChangeRow).where(InsightChangeRow.branch.isnot(None))
    ):
        changes_by_branch[str(change.branch)].append(change.id)
    for run in session.scalars(select(RunRow)):
        for change_id in changes_by_branch.get(run.branch or "", []):
            made += _link(session, ("run", run.id), ("change", change_id), "exact")
        for sha in _report_commits(run):
            made += _link(session, ("run", run.id), ("commit", sha), "exact")
    return made


def _carries(paths: dict[str, Path], repo: str, sha: str, deployed: str) -> str | None:
    """``exact`` / ``ancestry`` / ``None``: whether a deployment of ``deployed`` carries
    ``sha``."""
    if deployed == sha or (len(sha) >= 7 and deployed.startswith(sha)):
        return "exact"
    path = paths.get(repo)
    if path is not None and is_ancestor(path, sha, deployed):
        return "ancestry"
    return None


def _first_deployments(
    deployments: list[InsightDeploymentRow],
    paths: dict[str, Path],
    repo: str,
    sha: str,
    *,
    skip: frozenset[str] = frozenset(),
    until_success: bool = False,
) -> list[tuple[InsightDeploymentRow, str]]:
    """Per environment (but those in ``skip``), the earliest deployment carrying ``sha``
    (and, ``until_success``, every later one up to the first that succeeded), with the
    link's method."""
    found: list[tuple[InsightDeploymentRow, str]] = []
    closed: set[str] = set(skip)
    for dep in deployments:  # oldest first
        if dep.repo != repo or dep.environment in closed:
            continue
        method = _carries(paths, repo, sha, dep.sha)
        if method is None:
            continue
        found.append((dep, method))
        if not until_success or dep.status == "success":
            closed.add(dep.environment)
    return found


def _link_changes(
    session: Session, deployments: list[InsightDeploymentRow], paths: dict[str, Path]
) -> int:
    made = 0
    succeeded = {d.id: d.environment for d in deployments if d.status == "success"}
    done: dict[str, set[str]] = defaultdict(set)  # change -> environments it reached
    for link in session.scalars(
        select(InsightLinkRow).where(
            InsightLinkRow.src_kind == "change", InsightLinkRow.dst_kind == "deployment"
        )
    ):
        if link.dst_id in succeeded:
            done[link.src_id].add(succeeded[link.dst_id])
    merged = select(InsightChangeRow).where(InsightChangeRow.merge_commit_sha.isnot(None))
    for change in session.scalars(merged):
        # A change is linked to the deployments that carried it in each environment up to
        # the first that succeeded (lead time ends there); once it reached an environment,
        # later imports do not walk the history again for it.
        for dep, method in _first_deployments(
            deployments,
            paths,
            change.repo,
            str(change.merge_commit_sha),
            skip=frozenset(done[change.id]),
            until_success=True,
        ):
            made += _link(session, ("change", change.id), ("deployment", dep.id), method)
    return made


def _named_changes(session: Session, incident: InsightIncidentRow) -> list[InsightChangeRow]:
    mark = "#" if incident.source == "github" else "!"
    text = f"{incident.title}\n{incident.body}"
    numbers = {int(n) for n in re.findall(re.escape(mark) + r"(\d+)\b", text)}
    if not numbers:
        return []
    query = select(InsightChangeRow).where(
        InsightChangeRow.repo == incident.repo, InsightChangeRow.number.in_(numbers)
    )
    return list(session.scalars(query))


def _link_incidents(
    session: Session, deployments: list[InsightDeploymentRow], paths: dict[str, Path]
) -> int:
    made = 0
    for incident in session.scalars(select(InsightIncidentRow)):
        source = ("incident", incident.id)
        for change in _named_changes(session, incident):
            made += _link(session, source, ("change", change.id), "exact")
            carried = select(InsightLinkRow).where(
                InsightLinkRow.src_kind == "change", InsightLinkRow.src_id == change.id
            )
            for link in session.scalars(carried):
                made += _link(session, source, ("deployment", link.dst_id), "exact")
        for sha in set(_SHA.findall(f"{incident.title}\n{incident.body}")):
            for dep, method in _first_deployments(deployments, paths, incident.repo, sha):
                made += _link(session, source, ("deployment", dep.id), method)
    return made


def link_all(db: Database) -> int:
    """Derive every link the stored rows allow; the number of new links. Idempotent."""
    with db.session() as session:
        paths = {c.repo: Path(c.path) for c in session.scalars(select(InsightGitCursorRow))}
        deployments = list(
            session.scalars(select(InsightDeploymentRow).order_by(InsightDeploymentRow.created_at))
        )
        made = _link_runs(session)
        made += _link_changes(session, deployments, paths)
        made += _link_incidents(session, deployments, paths)
    return made
