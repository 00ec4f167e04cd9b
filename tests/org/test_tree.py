"""The organisation tree: building it and rejecting bad ones."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestra.config import parse_config
from orchestra.config.org import OrganisationSection, UnitConfig
from orchestra.org import OrgInvalid, build_org_tree, org_problems

ORG = """\
organisation:
  name: acme
  units:
    - {name: platform, kind: division}
    - {name: payments, kind: tribe, parent: platform}
    - {name: checkout, kind: squad, parent: payments}
    - {name: search, kind: squad}
    - {name: python-guild, kind: guild, description: Python practices}
  developers:
    - {name: ana, unit: checkout, role: lead, guilds: [python-guild]}
    - {name: ben, unit: checkout}
    - {name: cy, unit: search, role: viewer, guilds: [python-guild, python-guild]}
    - {name: dee, role: admin}
"""


def test_build_tree_nests_units_and_members() -> None:
    tree = build_org_tree(parse_config(ORG, environ={}).organisation)
    assert tree.name == "acme" and tree.headcount == 4
    assert [u.name for u in tree.children(None)] == ["platform", "search"]
    assert [u.name for u in tree.children("payments")] == ["checkout"]
    assert [d.name for d in tree.members("checkout")] == ["ana", "ben"]
    assert [d.name for d in tree.members(None)] == ["dee"]
    assert [d.name for d in tree.guild_members("python-guild")] == ["ana", "cy"]
    assert tree.team_names == {"platform", "payments", "checkout", "search"}
    data = tree.to_dict()
    assert data["units"][0]["units"][0]["units"][0]["developers"][0]["name"] == "ana"
    assert data["guilds"] == [
        {"name": "python-guild", "description": "Python practices", "members": ["ana", "cy"]}
    ]


@pytest.mark.parametrize(
    ("units", "developers", "expected"),
    [
        ("- {name: a, kind: squad, parent: a}", "", "is its own parent"),
        (
            "- {name: a, kind: tribe, parent: b}\n    - {name: b, kind: tribe, parent: a}",
            "",
            "cycle: a -> b -> a",
        ),
        (
            "- {name: a, kind: squad}\n    - {name: b, kind: division, parent: a}",
            "",
            "division 'b' sits under squad 'a'",
        ),
        ("- {name: g, kind: guild, parent: x}", "", "guilds cut across the tree"),
        ("- {name: a, kind: squad}\n    - {name: a, kind: tribe}", "", "defined twice"),
        (
            "- {name: g, kind: guild}\n    - {name: s, kind: squad, parent: g}",
            "",
            "has guild 'g' as parent",
        ),
        ("[]", "- {name: x, unit: ghost}", "unknown unit 'ghost'"),
        ("- {name: g, kind: guild}", "- {name: x, unit: g}", "has guild 'g' as home unit"),
        ("- {name: s, kind: squad}", "- {name: x, guilds: [s]}", "'s', which is not a guild"),
    ],
)
def test_bad_trees_are_rejected(units: str, developers: str, expected: str) -> None:
    devs = developers or "- {name: solo}"
    text = f"organisation:\n  units:\n    {units}\n  developers:\n    {devs}\n"
    section = parse_config(text, environ={}).organisation
    messages = [p.message for p in org_problems(section)]
    assert any(expected in m for m in messages), messages
    with pytest.raises(OrgInvalid) as caught:
        build_org_tree(section)
    assert caught.value.problems and caught.value.hint


def test_a_long_cycle_is_reported_once() -> None:
    units = "\n".join(
        f"    - {{name: u{i}, kind: tribe, parent: u{(i + 1) % 4}}}" for i in range(4)
    )
    section = parse_config(f"organisation:\n  units:\n{units}\n", environ={}).organisation
    problems = org_problems(section)
    assert [p.message for p in problems] == [
        "the parent links form a cycle: u0 -> u1 -> u2 -> u3 -> u0"
    ]
    assert problems[0].path == ("organisation", "units", "0", "parent")


@given(st.lists(st.integers(min_value=-1, max_value=7), min_size=1, max_size=8))
def test_cycles_are_reported_exactly_when_the_parent_links_loop(parents: list[int]) -> None:
    """Unit i's parent is unit parents[i] (-1: none); all tribes, so any link is allowed."""
    n = len(parents)
    links = {i: (p if 0 <= p < n else None) for i, p in enumerate(parents)}
    units = [
        UnitConfig(name=f"u{i}", kind="tribe", parent=None if p is None else f"u{p}")
        for i, p in links.items()
    ]
    section = OrganisationSection(units=units)
    reported = [
        p for p in org_problems(section) if "cycle" in p.message or "own parent" in p.message
    ]

    # Independent count of distinct cycles: walk from each node, collect loop node-sets.
    loops: set[frozenset[int]] = set()
    for start in links:
        seen: list[int] = []
        node: int | None = start
        while node is not None and node not in seen:
            seen.append(node)
            node = links[node]
        if node is not None:
            loops.add(frozenset(seen[seen.index(node) :]))
    assert len(reported) == len(loops)
    if loops:
        with pytest.raises(OrgInvalid):
            build_org_tree(section)
