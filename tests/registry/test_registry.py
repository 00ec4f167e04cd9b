"""Publishing, reviewing, serving and diffing versions, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete

from orchestra.accounting.audit import AuditChainBroken
from orchestra.org import OrgTree
from orchestra.policy import PolicyDenied
from orchestra.registry import (
    AgentRegistry,
    AgentUnknown,
    InvalidDefinition,
    RegistryConflict,
    VersionUnknown,
    principal_for,
    seed_builtins,
)
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayAuditHead
from tests.roster.agentfiles import agent_text, prompt_for


def _v2() -> str:
    return agent_text("python-developer", body=prompt_for("a second prompt"))


@pytest.mark.parametrize("policy_default", ["permit", "deny"], indirect=True)
def test_publish_waits_for_a_lead_and_a_developer_cannot_approve(
    registry: AgentRegistry, tree: OrgTree
) -> None:
    ben, ana = principal_for(tree, "ben"), principal_for(tree, "ana")
    published = registry.publish(ben, _v2())
    assert (published.label, published.state, published.publisher) == (
        "python-developer@v2",
        "pending",
        "ben",
    )
    assert registry.served("python-developer").version == 1  # pending is not served

    with pytest.raises(PolicyDenied) as refused:
        registry.approve(ben, "python-developer", "v2")
    assert refused.value.status == 403
    assert "refused by registry-review-needs-lead-or-admin" in refused.value.message
    denial = registry.audit.list(action="policy.deny")[0]
    assert denial.actor == "developer:ben"
    assert denial.target == 'approve_agent Agent::"python-developer"'
    assert denial.details["policy_ids"] == ["registry-review-needs-lead-or-admin"]
    assert registry.version("python-developer", 2).state == "pending"

    approved = registry.approve(ana, "python-developer", 2, note="reviewed the prompt")
    assert (approved.state, approved.reviewed_by, approved.note) == (
        "approved",
        "ana",
        "reviewed the prompt",
    )
    assert approved.reviewed_at is not None and approved.reviewed_at > published.published_at
    assert registry.served("python-developer").version == 2
    actions = [(e.actor, e.action, e.target) for e in registry.audit.list(action="registry.")]
    assert actions[:2] == [
        ("developer:ana", "registry.approve", "python-developer@v2"),
        ("developer:ben", "registry.publish", "python-developer@v2"),
    ]


def test_a_viewer_cannot_publish(registry: AgentRegistry, tree: OrgTree) -> None:
    with pytest.raises(PolicyDenied, match="viewer-read-only"):
        registry.publish(principal_for(tree, "cy"), _v2())
    assert [v.version for v in registry.versions("python-developer")] == [1]


def test_diff_shows_what_changed_between_versions(registry: AgentRegistry, tree: OrgTree) -> None:
    registry.publish(principal_for(tree, "ben"), _v2())
    diff = registry.diff("python-developer", "v1", "v2")
    assert diff.startswith("--- python-developer@v1 (orchestra, ")
    assert "+++ python-developer@v2 (ben, " in diff
    assert any(line.startswith("-") and "## Role" not in line for line in diff.splitlines()[2:])
    assert registry.diff("python-developer", 1, 1) == ""


def test_deprecated_is_served_with_a_warning_and_yanked_never(
    registry: AgentRegistry, tree: OrgTree
) -> None:
    dee = principal_for(tree, "dee")
    registry.deprecate(dee, "go-developer", 1, note="use golang-pro")
    summary = registry.summary("go-developer")
    assert summary.served is not None and summary.served.version == 1
    assert summary.warning == "go-developer@v1 is deprecated: use golang-pro"

    registry.yank(dee, "go-developer", "v1", note="leaks secrets")
    assert registry.summary("go-developer").served is None
    assert "go-developer" not in [s.agent for s in registry.summaries(served_only=True)]
    with pytest.raises(RegistryConflict, match="no version that may be served"):
        registry.served("go-developer")
    with pytest.raises(RegistryConflict, match="is yanked; only a version that is pending"):
        registry.approve(dee, "go-developer", 1)


def test_a_yanked_newest_version_falls_back_to_the_previous_approved_one(
    registry: AgentRegistry, tree: OrgTree
) -> None:
    dee = principal_for(tree, "dee")
    registry.publish(dee, _v2())
    registry.approve(dee, "python-developer", 2)
    registry.yank(dee, "python-developer", 2)
    assert registry.served("python-developer").version == 1


def test_bad_input_gets_clear_errors_and_stores_nothing(
    registry: AgentRegistry, tree: OrgTree
) -> None:
    ben = principal_for(tree, "ben")
    with pytest.raises(AgentUnknown) as unknown:
        registry.versions("python-develper")
    assert str(unknown.value.hint).startswith("did you mean python-developer,")
    assert unknown.value.status == 404
    with pytest.raises(VersionUnknown) as missing:
        registry.version("python-developer", "v7")
    assert "has no version v7" in missing.value.message and "v1" in str(missing.value.hint)
    with pytest.raises(VersionUnknown, match="'latest-ish'"):
        registry.diff("python-developer", "1", "latest-ish")

    broken = agent_text("python-developer", tier="giant", body=prompt_for("x"))
    with pytest.raises(InvalidDefinition) as invalid:
        registry.publish(ben, broken, source="mine.md")
    assert invalid.value.status == 422 and "mine.md:" in invalid.value.message
    with pytest.raises(RegistryConflict, match="already published as python-developer@v1"):
        registry.publish(
            ben,
            agent_text(
                "python-developer", category="languages", specialties="[python, pytest, go]"
            ),
        )
    assert [v.version for v in registry.versions("python-developer")] == [1]
    assert registry.audit.list(action="registry.publish") == []


def test_a_change_whose_audit_entry_fails_is_not_applied(
    registry: AgentRegistry, tree: OrgTree
) -> None:
    dee = principal_for(tree, "dee")
    registry.publish(dee, _v2())
    with registry.database.session() as session:
        session.execute(delete(GatewayAuditHead))  # the audit chain can no longer append
    with pytest.raises(AuditChainBroken):
        registry.approve(dee, "python-developer", 2)
    assert registry.version("python-developer", 2).state == "pending"


def test_seeding_is_idempotent_and_keeps_what_others_published(
    registry: AgentRegistry, tree: OrgTree, builtins: Path
) -> None:
    again = seed_builtins(registry, builtins)
    assert (again.published, again.unchanged) == ([], 4)
    registry.publish(principal_for(tree, "ana"), _v2())
    assert seed_builtins(registry, builtins).published == []
    (builtins / "go-developer.md").write_text(
        agent_text("go-developer", body=prompt_for("release 2"))
    )
    assert seed_builtins(registry, builtins).published == ["go-developer@v2"]
    assert registry.served("go-developer").publisher == "orchestra"
    seeds = registry.audit.list(action="registry.seed")
    assert [e.actor for e in seeds] == ["orchestra", "orchestra"]


def test_the_built_in_roster_seeds_as_119_approved_official_agents(database: Database) -> None:
    registry = AgentRegistry(database)
    try:
        assert len(seed_builtins(registry).published) == 119
        served = registry.summaries(served_only=True)
        assert len(served) == 119
        assert {(s.served.publisher, s.served.state) for s in served if s.served} == {
            ("orchestra", "approved")
        }
        assert seed_builtins(registry).unchanged == 119
    finally:
        registry.close()
