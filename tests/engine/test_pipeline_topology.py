"""The scripted pipeline's agent steps take their slots by the topology: its four reviews
ask at once; under ``hierarchical`` with squad quotas of 1 + 1 (cap 2) the run's squad
runs one agent at a time, under ``mesh`` (same cap) two. Each step's request names the
run's developer and their squad (SQLite, one process)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestra.demo import scripted_stack
from orchestra.engine.agents import RosterAgents
from orchestra.store.tables.slots import SlotRequestRow
from orchestra.testing.scripted import SAMPLE_TASK, create_sample_repository
from tests.engine.slot_harness import most_at_once

pytestmark = [pytest.mark.slow]

ORG = """
organisation:
  units: [{name: sa, kind: squad}, {name: sb, kind: squad}]
  developers: [{name: ann, unit: sa, role: admin}, {name: bob, unit: sb}]
engine:
  developer: ann
  max_concurrent_agents: 2
  scheduling: {topology: %s, weights: %s}
"""


def _epoch(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


@pytest.mark.parametrize(
    ("topology", "weights", "most"),
    [("hierarchical", "{sa: 1, sb: 1}", 1), ("mesh", "{}", 2)],
)
def test_the_topology_decides_how_many_of_a_squads_agents_run_at_once(
    tmp_path: Path, pipeline_agents: RosterAgents, topology: str, weights: str, most: int
) -> None:
    repo = create_sample_repository(tmp_path / "repo")
    with scripted_stack(
        tmp_path / "home",
        agents=pipeline_agents,
        review_latency_s=0.4,
        extra_yaml=ORG % (topology, weights),
    ) as stack:
        run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
        row = stack.runtime.wait(run_id, timeout_s=600)
        with stack.database.session() as session:
            requests = list(session.execute(select(SlotRequestRow)).scalars())
    assert row.status == "succeeded", row.failure_reason
    assert len(requests) == 10 and {(r.developer, r.squad) for r in requests} == {("ann", "sa")}
    assert all(r.state == "released" and r.granted_at and r.released_at for r in requests)
    spans = [(_epoch(r.granted_at), _epoch(r.released_at)) for r in requests]  # type: ignore[arg-type]
    assert most_at_once(spans) == most
