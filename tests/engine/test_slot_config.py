"""``engine.scheduling``: the topology (the stage's unless overridden), the allocation mode
and its weights, validated with clear errors, and placements from the organisation tree."""

from __future__ import annotations

import pytest

from orchestra.app import org_slots
from orchestra.config import parse_config
from orchestra.config.loader import ConfigInvalid
from orchestra.engine.workers import scheduling_differences
from orchestra.errors import SchedulingError
from orchestra.scheduling import Placement

ORG = """
organisation:
  units:
    - {name: payments, kind: tribe, regions: [eu]}
    - {name: cards, kind: squad, parent: payments}
    - {name: growth, kind: tribe, regions: [us]}
    - {name: ads, kind: squad, parent: growth}
  developers:
    - {name: ann, unit: cards}
    - {name: bob, unit: ads, regions: [apac]}
    - {name: cid}
"""


def test_topology_is_the_stages_unless_overridden_and_placements_come_from_the_tree() -> None:
    slots = org_slots(parse_config(ORG), "sqlite:///x", "w1")
    assert slots.topology == "mesh" and not slots.shared  # three developers: small_team
    assert slots.placement("ann") == Placement("ann", "cards", "payments", "eu")
    assert slots.placement("bob") == Placement("bob", "ads", "growth", "apac")
    assert slots.placement("cid") == Placement("cid", "-", "-", "-")
    assert slots.placement("someone") == Placement("someone", "-", "-", "-")
    pinned = parse_config(
        ORG + "engine:\n  scheduling: {topology: hierarchical, allocation: dynamic}\n"
    )
    slots = org_slots(pinned, "postgresql://db/x", "w1")
    assert (slots.topology, slots.settings.allocation, slots.shared) == (
        "hierarchical",
        "dynamic",
        True,
    )
    assert slots.units == ("-", "ads", "cards")  # cid belongs to no squad


def test_weights_must_name_units_of_the_topologys_level() -> None:
    config = parse_config(
        ORG + "engine:\n  scheduling: {topology: federated_hierarchical, "
        "weights: {payments: 2, cards: 1}}\n"
    )
    with pytest.raises(SchedulingError, match="'cards' is not a tribe") as caught:
        org_slots(config, "sqlite:///x", "w1")
    assert "growth" in (caught.value.hint or "")
    flat = parse_config(ORG + "engine:\n  scheduling: {topology: mesh, weights: {cards: 1}}\n")
    with pytest.raises(SchedulingError, match="mesh has no quotas"):
        org_slots(flat, "sqlite:///x", "w1")


@pytest.mark.parametrize(
    ("scheduling", "problem"),
    [
        ("{topology: ring}", "topology"),
        ("{allocation: psychic}", "allocation"),
        ("{weights: {cards: -1}}", "must not be negative"),
        ("{interval_s: 0}", "interval_s"),
        ("{burst: 3}", "burst"),
    ],
)
def test_bad_scheduling_settings_are_refused(scheduling: str, problem: str) -> None:
    with pytest.raises(ConfigInvalid, match=problem):
        parse_config(ORG + f"engine:\n  scheduling: {scheduling}\n")


def test_workers_agree_on_the_shared_settings_not_on_their_own_cadence() -> None:
    """What a worker records for the others to agree with (orchestra.engine.workers)."""
    mine = org_slots(parse_config(ORG), "postgresql://db/x", "w1").policy.shared_settings()
    cadence = parse_config(ORG + "engine:\n  scheduling: {poll_s: 0.5, tick_s: 3}\n")
    assert org_slots(cadence, "postgresql://db/x", "w2").policy.shared_settings() == mine
    assert mine["people"]["ann"] == ["cards", "payments", "eu"]

    other = parse_config(
        ORG.replace("{name: ann, unit: cards}", "{name: ann, unit: ads}")
        + "engine:\n  max_concurrent_agents: 3\n  scheduling: {topology: hierarchical}\n"
    )
    theirs = org_slots(other, "postgresql://db/x", "w2").policy.shared_settings()
    assert scheduling_differences(mine, theirs) == [
        "capacity 25 here, 3 there",
        "the organisation places 1 developer(s) otherwise: ann",
        "topology 'mesh' here, 'hierarchical' there",
        "units [] here, ['-', 'ads', 'cards'] there",
    ]
    assert scheduling_differences(mine, mine) == []
