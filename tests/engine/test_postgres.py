"""The pipeline on PostgreSQL: DBOS's system tables and Orchestra's tables on one server,
and every agent step holding an organisation-wide slot (orchestra.engine.slots)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from orchestra.demo import scripted_stack
from orchestra.engine.agents import RosterAgents
from orchestra.store import normalise_url
from orchestra.testing.scripted import SAMPLE_TASK, create_sample_repository
from tests.conftest import POSTGRES_ENV, scratch_postgres_database
from tests.engine.helpers import branch_log, report_of

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_happy_path_on_postgresql(tmp_path: Path, pipeline_agents: RosterAgents) -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    repo = create_sample_repository(tmp_path / "repo")
    with scratch_postgres_database(url) as scratch:
        with scripted_stack(
            tmp_path / "home", agents=pipeline_agents, database_url=scratch
        ) as stack:
            run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
            row = stack.runtime.wait(run_id, timeout_s=300)
        engine = create_engine(normalise_url(scratch))
        with engine.connect() as conn:
            steps = conn.execute(
                text("select count(*) from engine_steps where run_id = :r"), {"r": run_id}
            ).scalar_one()
            workflows = conn.execute(
                text("select count(*) from dbos.workflow_status where workflow_uuid like :p"),
                {"p": f"{run_id}%"},
            ).scalar_one()
            slots = conn.execute(
                text(
                    "select count(*) from engine_slot_requests where id like :p"
                    " and state = 'released' and granted_at is not null"
                ),
                {"p": f"{run_id}:%"},
            ).scalar_one()
        engine.dispose()
    assert row.status == "succeeded", row.failure_reason
    assert steps == 10
    assert workflows == 11  # the pipeline and its ten agent steps, durable in PostgreSQL
    assert slots == 10  # each agent step held one of the organisation's slots, then freed it
    assert not (tmp_path / "home" / "dbos.sqlite").exists()
    assert len(branch_log(repo, str(row.branch))) == 5
    assert report_of(row)["cost_source"] == "gateway ledger"
