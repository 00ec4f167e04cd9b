"""Organisation-wide agent slots on PostgreSQL: three worker processes sharing one DBOS
system database never hold more than the cap together, nor one developer more than their
limit, however many agent steps each process wants to run at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_ENV, scratch_postgres_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at the same instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def test_three_workers_never_exceed_the_cap_or_the_per_developer_limit(tmp_path: Path) -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    log = tmp_path / "held.jsonl"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    with scratch_postgres_database(url) as scratch:
        system = "postgresql://" + scratch.split("://", 1)[1]
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.engine.slot_worker",
                    system,
                    dev,
                    str(log),
                    "4",
                    "0.4",
                ],
                cwd=ROOT,
                env=env,
            )
            for dev in ("ann", "ann", "bob")
        ]
        for worker in workers:
            assert worker.wait(timeout=120) == 0
    held = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(held) == 12  # every step ran, each process wanting four at once
    everyone = [(s, e) for _, s, e in held]
    anns = [(s, e) for dev, s, e in held if dev == "ann"]
    # Cap 3 over 12 steps of 0.4 s; per-developer limit 2 (ann runs in two processes).
    assert 2 <= most_at_once(everyone) <= 3
    assert most_at_once(anns) <= 2
