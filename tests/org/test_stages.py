"""Growth stages: boundaries, allocations, pinned stages."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestra.config import parse_config
from orchestra.org import STAGES, assess_stage, current_stage, next_stage, stage_for_headcount


@pytest.mark.parametrize(
    ("headcount", "stage", "topology", "cap"),
    [
        (0, "individual", "single_node", 10),
        (1, "individual", "single_node", 10),
        (2, "small_team", "mesh", 25),
        (8, "small_team", "mesh", 25),
        (9, "medium", "hierarchical", 75),
        (25, "medium", "hierarchical", 75),
        (26, "large", "federated_hierarchical", 200),
        (75, "large", "federated_hierarchical", 200),
        (76, "enterprise", "enterprise_mesh", 1000),
        (5000, "enterprise", "enterprise_mesh", 1000),
    ],
)
def test_stage_boundaries(headcount: int, stage: str, topology: str, cap: int) -> None:
    found = stage_for_headcount(headcount)
    assert (found.name, found.topology, found.max_concurrent_agents) == (stage, topology, cap)


def test_negative_headcount_is_refused() -> None:
    with pytest.raises(ValueError):
        stage_for_headcount(-1)


@given(st.integers(min_value=1, max_value=100_000))
def test_allocation_never_exceeds_the_cap_and_grows_with_headcount(headcount: int) -> None:
    stage = stage_for_headcount(headcount)
    assert stage.admits(headcount)
    allocation = stage.agent_allocation(headcount)
    assert stage.shared_agents < allocation <= stage.max_concurrent_agents
    assert allocation >= stage.agent_allocation(max(headcount - 1, stage.min_developers))


def test_bounded_stages_reach_their_cap_exactly_at_their_top_headcount() -> None:
    for stage in STAGES:
        if stage.max_developers is not None:
            top = stage.shared_agents + stage.agents_per_developer * stage.max_developers
            assert top == stage.max_concurrent_agents, stage.name
    ranges = [(s.min_developers, s.max_developers) for s in STAGES]
    # Contiguous, no gaps, no overlaps.
    for (_, upper), (lower, _) in itertools.pairwise(ranges):
        assert upper is not None and lower == upper + 1


def _config(developers: int, stage: str | None = None) -> str:
    people = "".join(f"    - {{name: dev{i}}}\n" for i in range(developers))
    pin = f"  stage: {stage}\n" if stage else ""
    return f"organisation:\n{pin}  developers:\n{people}"


def test_current_stage_follows_the_headcount() -> None:
    config = parse_config(_config(12), environ={})
    assert current_stage(config).name == "medium"
    assessment = assess_stage(config)
    assert assessment.headcount == 12 and not assessment.pinned and assessment.warnings == ()
    assert assessment.next is not None and assessment.next.name == "large"
    assert "topology hierarchical -> federated_hierarchical" in assessment.changes_at_next
    assert "max concurrent agents 75 -> 200" in assessment.changes_at_next


def test_a_pinned_stage_wins_with_a_warning_when_headcount_disagrees() -> None:
    config = parse_config(_config(3, stage="large"), environ={})
    assert current_stage(config).name == "large"
    (warning,) = assess_stage(config).warnings
    assert "'large' but 3 developer(s) fit 'small_team'" in warning
    agreeing = parse_config(_config(3, stage="small_team"), environ={})
    assert assess_stage(agreeing).warnings == ()


def test_the_default_configuration_is_one_developer() -> None:
    config = parse_config("", environ={})
    assert current_stage(config).name == "individual"
    assert next_stage(STAGES[-1]) is None
