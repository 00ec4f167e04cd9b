"""The stage's cap over several engine processes: three `orchestra run`-like workers on one
PostgreSQL database, each running the scripted pipeline with a cap of 2 agents, never run
more than 2 agent steps at once between them (each step's start and end, as the engine
records them, overlapped across all three runs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from orchestra.engine.agents import RosterAgents
from orchestra.store import normalise_url
from orchestra.testing.scripted import create_sample_repository
from tests.conftest import POSTGRES_ENV, scratch_postgres_database
from tests.engine.slot_harness import most_at_once

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]


def start_worker(tmp_path: Path, n: int, url: str, agents: Path) -> subprocess.Popen[bytes]:
    repo = create_sample_repository(tmp_path / f"repo{n}")
    ready = tmp_path / f"ready{n}"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.engine.cap_worker",
            str(tmp_path / f"home{n}"),
            str(repo),
            url,
            f"run-cap-{n}",
            str(agents),
            str(ready),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
        stdout=subprocess.PIPE,
    )
    # One launch at a time: migrations and DBOS's system tables are created by the first.
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert worker.poll() is None, "a worker exited before its engine was up"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return worker


def test_three_engine_processes_never_run_more_agents_than_the_cap_together(
    tmp_path: Path, pipeline_agents: RosterAgents
) -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    agents = tmp_path / "agents"  # the pipeline_agents fixture's folder
    with scratch_postgres_database(url) as scratch:
        workers = [start_worker(tmp_path, n, scratch, agents) for n in range(3)]
        outputs = [w.communicate(timeout=900)[0].decode() for w in workers]
        engine = create_engine(normalise_url(scratch))
        with engine.connect() as conn:
            steps = conn.execute(
                text("select run_id, started_at, finished_at from engine_steps")
            ).all()
        engine.dispose()
    assert all(w.returncode == 0 for w in workers), outputs
    assert all(out.startswith("succeeded") for out in outputs), outputs
    assert len(steps) == 30 and all(s.finished_at is not None for s in steps)
    spans = [(s.started_at.timestamp(), s.finished_at.timestamp()) for s in steps]
    runs = {
        run: (min(a for r, a, _ in steps if r == run), max(b for r, _, b in steps if r == run))
        for run, _, _ in steps
    }
    # The three runs were under way at the same time ...
    assert max(a for a, _ in runs.values()) < min(b for _, b in runs.values())
    # ... and never had more than the cap's two agent steps running between them
    # (each process alone may run two: without the shared slots, up to six).
    assert most_at_once(spans) <= 2
