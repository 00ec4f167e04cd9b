"""Unit pools inherited down the organisation tree, and the developer's roster."""

from __future__ import annotations

import pytest

from orchestra.org import OrgTree
from orchestra.policy import PolicyDenied
from orchestra.registry import (
    AgentNotInPool,
    AgentRegistry,
    AgentUnknown,
    RegistryConflict,
    UnitPools,
    UnknownUnit,
    principal_for,
    search,
)


@pytest.mark.parametrize("policy_default", ["permit", "deny"], indirect=True)
def test_pools_inherit_down_the_tree_and_a_squad_narrows_its_tribe(
    registry: AgentRegistry, tree: OrgTree
) -> None:
    pools = UnitPools(registry, tree)
    dee, ana = principal_for(tree, "dee"), principal_for(tree, "ana")
    everything = ("go-developer", "python-developer", "python-reviewer", "test-writer")
    assert pools.view(None).agents == everything  # no pool anywhere: every served agent

    tribe = pools.set(dee, "payments", ["python-developer", "python-reviewer", "category:quality"])
    assert tribe.agents == ("python-developer", "python-reviewer", "test-writer")
    inherited = pools.view("checkout")
    assert inherited.own is None and inherited.restricted_by == ("payments",)
    assert inherited.chain == ("checkout", "payments", "platform", "acme")
    assert inherited.agents == tribe.agents
    assert pools.view("search").agents == everything  # another branch of the tree

    squad = pools.set(ana, "checkout", ["python-developer", "category:languages"])
    assert squad.agents == ("python-developer", "python-reviewer")  # go-developer: not in tribe
    assert squad.restricted_by == ("checkout", "payments")
    with pytest.raises(RegistryConflict, match="does not allow go-developer"):
        pools.set(ana, "checkout", ["go-developer"])

    set_entries = registry.audit.list(action="registry.pool")
    assert [(e.actor, e.target) for e in set_entries] == [
        ("developer:ana", "checkout"),
        ("developer:dee", "payments"),
    ]

    cleared = pools.clear(ana, "checkout")
    assert cleared.own is None and cleared.agents == tribe.agents


def test_a_developer_gets_their_units_pool_and_is_refused_the_rest(
    registry: AgentRegistry, tree: OrgTree
) -> None:
    pools = UnitPools(registry, tree)
    pools.set(principal_for(tree, "dee"), "payments", ["python-developer", "python-reviewer"])
    roster = pools.roster_for("ben")
    assert sorted(roster.names) == ["python-developer", "python-reviewer"]
    assert roster.get("python-developer").name == "python-developer"
    with pytest.raises(AgentNotInPool) as refused:
        roster.get("go-developer")
    message = refused.value.message
    assert "not in the agent pool of unit 'checkout'" in message
    assert "restricted by the pool of 'payments'" in message
    assert "checkout < payments < platform < acme" in message
    assert refused.value.status == 403
    with pytest.raises(AgentUnknown, match="no agent named 'golang'"):
        roster.get("golang")
    assert sorted(pools.roster_for("dee").names) == [
        "go-developer",
        "python-developer",
        "python-reviewer",
        "test-writer",
    ]


def test_a_deprecated_agent_in_the_pool_comes_with_a_warning(
    registry: AgentRegistry, tree: OrgTree
) -> None:
    registry.deprecate(principal_for(tree, "dee"), "test-writer", 1, note="use tdd-coach")
    roster = UnitPools(registry, tree).roster_for("ben")
    assert "test-writer" in roster
    assert roster.warnings == ("test-writer@v1 is deprecated: use tdd-coach",)


def test_pool_changes_need_a_lead_and_name_known_units_and_agents(
    registry: AgentRegistry, tree: OrgTree
) -> None:
    pools = UnitPools(registry, tree)
    ben = principal_for(tree, "ben")
    with pytest.raises(PolicyDenied, match="registry-pools-need-a-lead-of-the-unit"):
        pools.set(ben, "checkout", ["python-developer"])
    assert registry.audit.list(action="policy.deny")[0].target == (
        'manage_agent_pool Unit::"checkout"'
    )
    with pytest.raises(PolicyDenied, match="registry-pools-need-a-lead-of-the-unit"):
        pools.set(principal_for(tree, "ana"), "payments", ["python-developer"])  # above her unit
    with pytest.raises(PolicyDenied, match="registry-pools-need-a-lead-of-the-unit"):
        pools.set(principal_for(tree, "ana"), "acme", ["python-developer"])  # the organisation
    with pytest.raises(UnknownUnit) as unit:
        pools.view("chekout")
    assert unit.value.hint == "did you mean checkout?"
    with pytest.raises(AgentUnknown, match="python-dev"):
        pools.set(principal_for(tree, "dee"), "checkout", ["python-dev"])
    with pytest.raises(UnknownUnit, match="category 'qualty'"):
        pools.set(principal_for(tree, "dee"), "checkout", ["category:qualty"])
    with pytest.raises(UnknownUnit, match="no developer named 'bne'"):
        pools.roster_for("bne")
    assert pools.own() == {}


def test_search_by_name_tags_category_and_description(registry: AgentRegistry) -> None:
    summaries = registry.summaries(served_only=True)
    names = [h.summary.agent for h in search(summaries, "python")]
    assert names == ["python-developer", "python-reviewer"]
    assert [h.summary.agent for h in search(summaries, "", category="quality")] == ["test-writer"]
    assert [h.summary.agent for h in search(summaries, "", tag="fuzz")] == [
        "go-developer",
        "test-writer",
    ]
    hit = search(summaries, "go fuzz")[0]
    assert hit.summary.agent == "go-developer" and hit.fields == ("name", "tags", "description")
    assert search(summaries, "python nothing-like-this") == []
