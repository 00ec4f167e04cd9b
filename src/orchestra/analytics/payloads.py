"""Reading GitHub's and GitLab's webhook payloads (their documented formats) into records.

GitHub: ``pull_request``, ``pull_request_review``, ``deployment_status`` and ``issues``
events. GitLab: ``Merge Request Hook``, ``Deployment Hook`` and ``Issue Hook``. Issues
become incidents, bugs or security findings by their labels (GitLab's ``issue_type:
incident`` counts as an incident label); other issues are ignored. A payload missing a
field the format documents raises :class:`MalformedPayload` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestra.analytics.errors import MalformedPayload
from orchestra.analytics.records import ChangeRecord, DeploymentRecord, IncidentRecord, Record


@dataclass(frozen=True)
class IssueLabels:
    """Which labels make an issue an incident, a bug or a security finding (lower case)."""

    incident: frozenset[str] = field(default_factory=lambda: frozenset({"incident"}))
    bug: frozenset[str] = field(default_factory=lambda: frozenset({"bug"}))
    security: frozenset[str] = field(default_factory=lambda: frozenset({"security"}))

    def kind_of(self, labels: Sequence[str]) -> str | None:
        """``incident`` before ``security`` before ``bug``; ``None`` for other issues."""
        names = {label.lower() for label in labels}
        for kind, wanted in (
            ("incident", self.incident),
            ("security", self.security),
            ("bug", self.bug),
        ):
            if names & wanted:
                return kind
        return None


def _get(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise MalformedPayload(
                f"the payload has no {path!r}",
                hint="send the event exactly as GitHub or GitLab documents it",
            )
        node = node[part]
    return node


def _str(data: Mapping[str, Any], path: str) -> str:
    value = _get(data, path)
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise MalformedPayload(f"{path!r} is not a string", hint="check the payload")
    return str(value)


def _int(data: Mapping[str, Any], path: str) -> int:
    value = _get(data, path)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedPayload(f"{path!r} is not an integer", hint="check the payload")
    return value


def parse_time(value: Any, what: str = "time") -> datetime:
    """ISO 8601 (GitHub) or GitLab's ``2021-04-28 21:50:00 +0200`` / ``... UTC``, as UTC."""
    if not isinstance(value, str):
        raise MalformedPayload(f"{what} is not a time: {value!r}", hint="use ISO 8601")
    text = value.strip().replace(" UTC", "+00:00")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if len(text) > 19 and text[19] == " ":  # GitLab's "YYYY-MM-DD HH:MM:SS +0200"
        text = text[:19] + text[20:]
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError as exc:
        raise MalformedPayload(f"{what} is not a time: {value!r}", hint="use ISO 8601") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _opt_time(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    return None if value in (None, "") else parse_time(value, key)


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- GitHub --------------------------------------------------------------------------------
def _github_change(payload: Mapping[str, Any], *, reviewed: bool) -> ChangeRecord:
    pr = _get(payload, "pull_request")
    repo = _str(payload, "repository.full_name")
    number = _int(pr, "number")
    merged_at = _opt_time(pr, "merged_at")
    state = "merged" if merged_at is not None else _str(pr, "state")
    review_at = None
    if reviewed:
        review_at = parse_time(_get(payload, "review.submitted_at"), "review.submitted_at")
    return ChangeRecord(
        id=f"github:{repo}#{number}",
        source="github",
        repo=repo,
        number=number,
        title=_str(pr, "title"),
        author=_str(pr, "user.login"),
        branch=_str(pr, "head.ref"),
        state=state,
        created_at=parse_time(_get(pr, "created_at"), "pull_request.created_at"),
        merged_at=merged_at,
        first_review_at=review_at,
        merge_commit_sha=pr.get("merge_commit_sha") if merged_at is not None else None,
        additions=_opt_int(pr, "additions"),
        deletions=_opt_int(pr, "deletions"),
    )


def _github_deployment(payload: Mapping[str, Any]) -> DeploymentRecord:
    status = _get(payload, "deployment_status")
    deployment = _get(payload, "deployment")
    repo = _str(payload, "repository.full_name")
    return DeploymentRecord(
        id=f"github:{repo}:{_str(deployment, 'id')}",
        source="github",
        repo=repo,
        environment=_str(deployment, "environment"),
        sha=_str(deployment, "sha"),
        status=_str(status, "state").lower(),
        created_at=parse_time(_get(deployment, "created_at"), "deployment.created_at"),
        status_at=parse_time(
            status.get("updated_at") or _get(status, "created_at"), "deployment_status.created_at"
        ),
    )


def _labels(items: Any, key: str) -> list[str]:
    if not isinstance(items, list):
        return []
    return [str(item[key]) for item in items if isinstance(item, Mapping) and key in item]


def _github_issue(payload: Mapping[str, Any], labels: IssueLabels) -> IncidentRecord | None:
    issue = _get(payload, "issue")
    if "pull_request" in issue:  # GitHub sends pull requests' comments as issues too
        return None
    kind = labels.kind_of(_labels(issue.get("labels"), "name"))
    if kind is None:
        return None
    repo = _str(payload, "repository.full_name")
    number = _int(issue, "number")
    return IncidentRecord(
        id=f"github:{repo}!{number}",
        source="github",
        repo=repo,
        number=number,
        kind=kind,
        title=_str(issue, "title"),
        body=str(issue.get("body") or ""),
        created_at=parse_time(_get(issue, "created_at"), "issue.created_at"),
        resolved_at=_opt_time(issue, "closed_at") if issue.get("state") == "closed" else None,
    )


def github_records(
    event: str, payload: Mapping[str, Any], labels: IssueLabels | None = None
) -> list[Record]:
    """The records one GitHub event carries (``X-GitHub-Event`` names it); other events
    carry none."""
    if not isinstance(payload, Mapping):
        raise MalformedPayload("the payload is not a JSON object", hint="send the event body")
    if event == "pull_request":
        return [_github_change(payload, reviewed=False)]
    if event == "pull_request_review":
        return [_github_change(payload, reviewed=True)]
    if event == "deployment_status":
        return [_github_deployment(payload)]
    if event == "issues":
        record = _github_issue(payload, labels or IssueLabels())
        return [record] if record is not None else []
    return []


# -- GitLab --------------------------------------------------------------------------------
_GITLAB_MR_STATES = {"opened": "open", "merged": "merged", "closed": "closed", "locked": "open"}
_GITLAB_DEPLOY_STATES = {"failed": "failure", "running": "in_progress", "created": "pending"}


def _gitlab_change(payload: Mapping[str, Any]) -> ChangeRecord:
    attrs = _get(payload, "object_attributes")
    repo = _str(payload, "project.path_with_namespace")
    number = _int(attrs, "iid")
    state = _GITLAB_MR_STATES.get(_str(attrs, "state"), "open")
    action = attrs.get("action")
    updated = _opt_time(attrs, "updated_at")
    return ChangeRecord(
        id=f"gitlab:{repo}#{number}",
        source="gitlab",
        repo=repo,
        number=number,
        title=_str(attrs, "title"),
        author=_str(payload, "user.username") if action == "open" else None,
        branch=_str(attrs, "source_branch"),
        state=state,
        created_at=parse_time(_get(attrs, "created_at"), "object_attributes.created_at"),
        merged_at=updated if state == "merged" else None,
        first_review_at=updated if action == "approved" else None,
        merge_commit_sha=attrs.get("merge_commit_sha") if state == "merged" else None,
    )


def _gitlab_deployment(payload: Mapping[str, Any]) -> DeploymentRecord:
    repo = _str(payload, "project.path_with_namespace")
    status = _str(payload, "status").lower()
    at = parse_time(_get(payload, "status_changed_at"), "status_changed_at")
    return DeploymentRecord(
        id=f"gitlab:{repo}:{_str(payload, 'deployment_id')}",
        source="gitlab",
        repo=repo,
        environment=_str(payload, "environment"),
        sha=_str(payload, "sha"),
        status=_GITLAB_DEPLOY_STATES.get(status, status),
        created_at=at,
        status_at=at,
    )


def _gitlab_issue(payload: Mapping[str, Any], labels: IssueLabels) -> IncidentRecord | None:
    attrs = _get(payload, "object_attributes")
    names = _labels(payload.get("labels"), "title")
    if attrs.get("issue_type") == "incident" or attrs.get("type") == "Incident":
        names.append(next(iter(labels.incident), "incident"))
    kind = labels.kind_of(names)
    if kind is None:
        return None
    repo = _str(payload, "project.path_with_namespace")
    number = _int(attrs, "iid")
    return IncidentRecord(
        id=f"gitlab:{repo}!{number}",
        source="gitlab",
        repo=repo,
        number=number,
        kind=kind,
        title=_str(attrs, "title"),
        body=str(attrs.get("description") or ""),
        created_at=parse_time(_get(attrs, "created_at"), "object_attributes.created_at"),
        resolved_at=_opt_time(attrs, "closed_at") if attrs.get("state") == "closed" else None,
    )


GITLAB_EVENTS = {
    "Merge Request Hook": "merge_request",
    "Deployment Hook": "deployment",
    "Issue Hook": "issue",
}
"""``X-Gitlab-Event`` header values and the ``object_kind`` each carries."""


def gitlab_records(
    event: str, payload: Mapping[str, Any], labels: IssueLabels | None = None
) -> list[Record]:
    """The records one GitLab event carries (``X-Gitlab-Event`` or ``object_kind``)."""
    if not isinstance(payload, Mapping):
        raise MalformedPayload("the payload is not a JSON object", hint="send the event body")
    kind = GITLAB_EVENTS.get(event, event)
    if kind == "merge_request":
        return [_gitlab_change(payload)]
    if kind == "deployment":
        return [_gitlab_deployment(payload)]
    if kind == "issue":
        record = _gitlab_issue(payload, labels or IssueLabels())
        return [record] if record is not None else []
    return []
