"""Storing the organisation on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from orchestra.config import parse_config
from orchestra.errors import StoreError
from orchestra.org import Developer, OrgTree, build_org_tree, load_org, sync_org
from orchestra.store import Database
from tests.org.test_tree import ORG


def _tree(text: str) -> OrgTree:
    return build_org_tree(parse_config(text, environ={}).organisation)


def test_sync_stores_the_tree_and_is_idempotent(database: Database) -> None:
    assert load_org(database) is None
    tree = _tree(ORG)
    first = sync_org(database, tree)
    assert "squad checkout" in first.added and "developer ana" in first.added
    assert "guild member cy in python-guild" in first.added
    assert first.updated == [] and first.removed == []
    assert load_org(database) == tree
    second = sync_org(database, tree)
    assert not second.changed


def test_sync_updates_and_removes_what_the_yaml_no_longer_has(database: Database) -> None:
    sync_org(database, _tree(ORG))
    changed = (
        ORG.replace("    - {name: search, kind: squad}\n", "")
        .replace(
            "{name: cy, unit: search, role: viewer, guilds: [python-guild, python-guild]}",
            "{name: cy, unit: checkout, role: developer}",
        )
        .replace("{name: ben, unit: checkout}", "{name: eve, unit: checkout}")
        .replace("name: acme", "name: acme-corp")
    )
    result = sync_org(database, _tree(changed))
    assert sorted(result.added) == ["developer eve"]
    # The guild moved up one place in the file: its stored position is updated too.
    assert sorted(result.updated) == [
        "developer cy",
        "guild python-guild",
        "organisation acme-corp",
    ]
    assert sorted(result.removed) == [
        "developer ben",
        "guild member cy in python-guild",
        "squad search",
    ]
    stored = load_org(database)
    assert stored == _tree(changed)
    assert stored is not None and stored.name == "acme-corp"


def test_a_failing_sync_writes_nothing(database: Database) -> None:
    tree = _tree(ORG)
    sync_org(database, tree)
    # Two developers with one name cannot be stored: the second insert fails at commit,
    # after the units were already changed in the same transaction.
    broken = OrgTree(
        name="acme",
        units=tree.units[:2],
        developers=(Developer("zed"), Developer("zed")),
    )
    with pytest.raises(StoreError) as caught:
        sync_org(database, broken)
    assert "nothing was written" in (caught.value.hint or "")
    assert load_org(database) == tree
