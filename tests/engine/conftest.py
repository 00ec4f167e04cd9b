"""Fixtures for complete pipeline runs: a scripted upstream, the real gateway, the engine."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestra.engine import dbos_threads
from orchestra.engine.agents import RosterAgents
from orchestra.roster import BUILTIN_AGENTS_DIR

PIPELINE_AGENTS = (
    "chief-architect",
    "test-writer",
    "python-developer",
    "security-auditor",
    "code-reviewer",
    "readme-writer",
    "qa-lead",
)


@pytest.fixture
def pipeline_agents(tmp_path: Path) -> RosterAgents:
    """The built-in agent files the test-first pipeline uses, loaded by the real loader.

    Loading only these keeps the tests independent of unrelated agent files.
    """
    folder = tmp_path / "agents"
    folder.mkdir()
    for name in PIPELINE_AGENTS:
        shutil.copy(BUILTIN_AGENTS_DIR / f"{name}.md", folder / f"{name}.md")
    return RosterAgents.load(folder)


@pytest.fixture(autouse=True)
def no_dbos_thread_outlives_its_test() -> Iterator[None]:
    """Every engine started by a test is stopped with its workflow threads by its end.

    A DBOS thread left running reaches its (removed) temporary database after the test:
    the tracebacks CI printed after the session.
    """
    yield
    left = [t.name for t in dbos_threads()]
    assert not left, f"DBOS threads still running after the test: {left}"
