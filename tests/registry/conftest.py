"""A registry on each backend, seeded with a few agents, over the test organisation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestra.config import parse_config
from orchestra.org import OrgTree, build_org_tree
from orchestra.policy import PolicyEngine, PolicySource
from orchestra.registry import AgentRegistry, seed_builtins
from orchestra.store import Database
from tests.org.test_tree import ORG
from tests.roster.agentfiles import write_agent

SEEDED = ("python-developer", "python-reviewer", "go-developer", "test-writer")


class StepClock:
    """A clock that moves one minute per reading (deterministic provenance times)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def tree() -> OrgTree:
    """acme: platform > payments > checkout (ana lead, ben developer); search (cy viewer);
    dee admin at the top."""
    return build_org_tree(parse_config(ORG, environ={}).organisation)


@pytest.fixture
def builtins(tmp_path: Path) -> Path:
    """A folder of four official agents (two categories)."""
    folder = tmp_path / "builtins"
    for name in SEEDED:
        category = "quality" if name == "test-writer" else "languages"
        specialties = "[python, pytest, go]" if "python" in name else "[go, testing, fuzz]"
        write_agent(folder, name, category=category, specialties=specialties)
    return folder


@pytest.fixture(params=["permit"])
def policy_default(request: pytest.FixtureRequest) -> str:
    """``policies.default`` of the registry's policy engine."""
    return str(request.param)


@pytest.fixture
def registry(database: Database, builtins: Path, policy_default: str) -> Iterator[AgentRegistry]:
    """A registry seeded with :data:`SEEDED` as the official publisher, deciding with the
    shipped Cedar policies over the test organisation."""
    registry = AgentRegistry(database, clock=StepClock())
    org = parse_config(ORG, environ={}).organisation
    registry.policy = PolicyEngine(
        PolicySource(default=policy_default, org=org), audit=registry.audit
    )
    seed_builtins(registry, builtins)
    yield registry
    registry.close()
