"""Workers on PostgreSQL, as separate processes sharing one database and state folder:
a duplicate executor id is refused at start, a SIGKILLed worker's run is finished by
another worker (its reaper) with no completed model call made again, and, through two
shared gateway replicas, not even the call in flight at the kill; SIGTERM drains a worker
so that another finishes its run without waiting for its lease to expire and with no model
call made twice (counted at the scripted upstream)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text

from orchestra.accounting import Accounting
from orchestra.config import load_config
from orchestra.demo import scripted_config_yaml
from orchestra.engine.runs import FINAL_STATUSES, RunStore
from orchestra.engine.workers import WorkerInfo, WorkerRegistry
from orchestra.store import Database, open_database
from orchestra.store.tables.engine import RunRow
from orchestra.testing import FakeUpstream
from orchestra.testing.scripted import ScriptedModel, create_sample_repository
from tests.conftest import POSTGRES_ENV, MigratedTemplates, scratch_postgres_database
from tests.engine.fleet_worker import GATEWAY_KEY_ENV, GATEWAY_URL_ENV
from tests.engine.helpers import HAPPY_PATH_CALLS, ROOT, call_keys
from tests.gateway.redis_state import redis_prefix, redis_url
from tests.server.helpers import free_port, start_gateway, stop
from tests.server.test_gateway_replicas import _both_replicas_answer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FAST_LEASE = "engine: {workers: {heartbeat_s: 0.5, timeout_s: 5}}"
"""Heartbeats every 0.5 s; dead after 5 s without one (short for the tests, and still ten
beats long: on a loaded machine a shorter lease expires for live workers)."""


@dataclass
class Fleet:
    """Worker processes on one scratch database, state folder and scripted upstream."""

    tmp: Path
    url: str
    upstream: FakeUpstream
    agents: Path
    database: Database
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, name: str, runs: tuple[str, ...] = (), *, env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], str]:
        """Start worker ``name`` (starting ``runs``); returns it and its executor id once
        its engine is up (or it exited)."""
        home = self.tmp / "home"
        for run_id in runs:
            create_sample_repository(home / "repos" / run_id)
        ready = self.tmp / f"ready-{name}"
        module = "tests.engine.fleet_worker"
        args = [str(home), self.url, self.upstream.base_url, str(self.agents), str(ready)]
        log = self.tmp / f"worker-{name}.log"
        with log.open("wb") as stderr:
            worker = subprocess.Popen(
                [sys.executable, "-m", module, *args, *runs],
                cwd=ROOT,
                env={
                    **os.environ,
                    "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
                    "ORCHESTRA_HOME": str(home),
                    "FLEET_YAML": FAST_LEASE,
                    **(env or {}),
                },
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        _LOGS[worker.pid] = log
        self.processes.append(worker)
        deadline = time.monotonic() + 300  # guards against a hang (the machine is shared)
        while not ready.exists() and worker.poll() is None:
            assert time.monotonic() < deadline, f"worker {name} did not start"
            time.sleep(0.05)
        return worker, ready.read_text() if ready.exists() else ""

    def run(self, run_id: str, timeout_s: float = 900) -> RunRow:
        """Wait for ``run_id`` to end (a guard against a hang, not a timing target)."""
        runs = RunStore(self.database)
        deadline = time.monotonic() + timeout_s
        while (row := runs.get(run_id)).status not in FINAL_STATUSES:
            assert time.monotonic() < deadline, f"run {run_id} still {row.status}"
            time.sleep(0.2)
        return row

    def worker(self, executor_id: str) -> WorkerInfo:
        """The registry's row of ``executor_id``."""
        infos = WorkerRegistry(self.database, timeout_s=5).list()
        return next(i for i in infos if i.executor_id == executor_id)

    def recorded_calls(self) -> int:
        """Model calls whose answers DBOS has recorded (steps ``model:<step>:<turn>``)."""
        with self.database.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "select count(*) from dbos.operation_outputs "
                        "where function_name like 'model:%'"
                    )
                ).scalar_one()
            )

    def wait_calls(self, answered: int, *, in_flight: bool) -> None:
        """Wait until the upstream answered ``answered`` calls and, then, until a call is
        in flight (``in_flight``), or until none is and every answer is recorded."""
        deadline = time.monotonic() + 600
        while True:
            assert time.monotonic() < deadline, "the worker made too few model calls"
            busy = self.upstream.in_flight > 0
            done = self.upstream.answered
            if done >= answered:
                if in_flight and busy:
                    return
                if not in_flight and not busy and self.recorded_calls() == done:
                    return
            time.sleep(0.005)


@pytest.fixture
def fleet(
    tmp_path: Path, pipeline_agents: object, migrated_templates: MigratedTemplates
) -> Iterator[Fleet]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    template = migrated_templates.postgres_database(url)
    with (
        scratch_postgres_database(url, template) as scratch,
        FakeUpstream.start() as upstream,
    ):
        upstream.responder = ScriptedModel("happy", latency_s=0.2)
        database = open_database(scratch)
        fleet = Fleet(tmp_path, scratch, upstream, tmp_path / "agents", database)
        try:
            yield fleet
        finally:
            for process in fleet.processes:
                if process.poll() is None:
                    process.kill()
                process.communicate(timeout=60)
            database.dispose()


@contextmanager
def shared_gateway(fleet: Fleet) -> Iterator[dict[str, str]]:
    """Two ``orchestra gateway --reuse-port`` replicas on one port, on the fleet's database
    and a shared Redis, in front of its scripted upstream; yields the environment that
    points a fleet worker at them (``engine.gateway_url`` and a developer's key)."""
    redis = redis_url()
    home = fleet.tmp / "home"
    with ExitStack() as stack:
        prefix = stack.enter_context(redis_prefix(redis))
        config = fleet.tmp / "gateway.yaml"
        shared = f"gateway: {{shared_state: {{url: '{redis}', prefix: {prefix}, timeout_s: 5}}}}\n"
        config.write_text(scripted_config_yaml(fleet.upstream.base_url, shared))
        accounting = Accounting(fleet.database, load_config(config), home=home)
        key = accounting.keys.create("developer", None)[0]
        accounting.close()
        port = free_port()
        replicas = []
        for _ in range(2):
            replicas.append(
                start_gateway(
                    config, fleet.url, home, port, extra=["--reuse-port"], ready_within_s=300
                )
            )
            stack.callback(stop, replicas[-1])
        url = f"http://127.0.0.1:{port}"
        _both_replicas_answer(url, replicas)
        yield {GATEWAY_URL_ENV: url, GATEWAY_KEY_ENV: key}


def _replays(database: Database) -> int:
    """Model calls the gateway answered from an idempotency key (its audit log)."""
    with database.engine.connect() as conn:
        sql = "select count(*) from gateway_audit where action = 'gateway.idempotent_replay'"
        return int(conn.execute(text(sql)).scalar_one())


def _stop(worker: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    """SIGTERM ``worker``; its exit code, stdout and log (its stderr)."""
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=120)
    return worker.returncode, out.decode(), _log(worker)


def _log(worker: subprocess.Popen[bytes]) -> str:
    """What ``worker`` wrote on stderr."""
    return _LOGS[worker.pid].read_text()


_LOGS: dict[int, Path] = {}
"""Each worker's stderr file, by pid."""


def test_a_second_worker_with_a_live_executor_id_or_other_scheduling_settings_is_refused(
    fleet: Fleet,
) -> None:
    first, executor = fleet.start("a", env={"ORCHESTRA_EXECUTOR_ID": "fleet-dup"})
    assert executor == "fleet-dup"
    second, _ = fleet.start("b", env={"ORCHESTRA_EXECUTOR_ID": "fleet-dup"})
    second.communicate(timeout=60)
    assert second.returncode != 0
    assert "executor id 'fleet-dup' is held by a live worker" in _log(second)
    assert fleet.worker("fleet-dup").state == "running"
    # Another id, but another cap: it would grant the shared slots under its own.
    capped = "engine: {max_concurrent_agents: 7, workers: {heartbeat_s: 0.5, timeout_s: 5}}"
    third, _ = fleet.start("c", env={"FLEET_YAML": capped})
    third.communicate(timeout=60)
    assert third.returncode != 0
    assert "differ from those of live worker 'fleet-dup'" in _log(third)
    assert "capacity 7 here, 10 there" in _log(third)
    code, out, err_a = _stop(first)
    assert code == 0 and "drained idle=True" in out, err_a
    assert fleet.worker("fleet-dup").state == "drained"


def test_a_killed_workers_run_is_finished_by_another_without_repeating_calls(
    fleet: Fleet,
) -> None:
    doomed, dead_id = fleet.start("a", ("run-killed",))
    survivor, reaper_id = fleet.start("b")
    # Kill it between two model calls, nine calls in (planning done, tests being written):
    # every answer so far recorded by DBOS, none in flight at the upstream.
    fleet.wait_calls(9, in_flight=False)
    answered_at_check = fleet.upstream.answered
    os.kill(doomed.pid, signal.SIGKILL)
    # Calls that reached the upstream after the check (in flight at the kill, or answered
    # in the instant before it and not yet recorded): only those may be made again. The
    # in-flight count is read first, so a call finishing between the reads counts twice.
    in_flight_at_kill = fleet.upstream.in_flight
    unsure = fleet.upstream.answered - answered_at_check + in_flight_at_kill
    doomed.wait()
    row = fleet.run("run-killed")
    code, _out, err = _stop(survivor)

    assert row.status == "succeeded", (row.failure_reason, err)
    assert code == 0, err
    assert "Traceback" not in err, err[-4000:]
    dead = fleet.worker(dead_id)
    assert (dead.state, dead.recovered_by) == ("recovered", reaper_id)
    assert dead.recovered_workflows >= 1
    # Every call of the run's script was made, and none twice but one in flight at the kill.
    keys = call_keys(fleet.upstream.requests)
    assert len(keys) == HAPPY_PATH_CALLS
    repeated = sum(n - 1 for n in keys.values())
    # 0, unless a call reached the upstream in the instant between the check and the kill.
    assert repeated <= unsure, (repeated, unsure)
    # Each worker held its own key of the run; the run's end revoked both.
    with fleet.database.engine.begin() as conn:
        held = conn.execute(
            text(
                "select holder, revoked_at is not null from gateway_keys "
                "where name = 'run:run-killed' order by created_at"
            )
        ).all()
    assert [tuple(k) for k in held] == [(dead_id, True), (reaper_id, True)]


def test_a_killed_workers_call_in_flight_is_not_made_again_through_shared_gateways(
    fleet: Fleet,
) -> None:
    # Each call takes 0.5 s at the upstream: the kill lands while one is in flight there.
    fleet.upstream.responder = ScriptedModel("happy", latency_s=0.5)
    with shared_gateway(fleet) as env:
        doomed, dead_id = fleet.start("a", ("run-in-flight",), env=env)
        survivor, reaper_id = fleet.start("b", env=env)
        fleet.wait_calls(9, in_flight=True)
        os.kill(doomed.pid, signal.SIGKILL)
        in_flight_at_kill = fleet.upstream.in_flight
        doomed.wait()
        row = fleet.run("run-in-flight")
        code, _out, err = _stop(survivor)

    assert row.status == "succeeded", (row.failure_reason, err)
    assert code == 0, err
    assert "Traceback" not in err, err[-4000:]
    dead = fleet.worker(dead_id)
    assert (dead.state, dead.recovered_by) == ("recovered", reaper_id)
    assert in_flight_at_kill >= 1  # the kill landed mid-call
    # Every (step, turn) of the run's script reached the upstream exactly once: the call
    # in flight at the kill was finished and kept by the gateway, and the step continued
    # by the survivor was given its answer under the same Idempotency-Key.
    keys = call_keys(fleet.upstream.requests)
    assert len(keys) == HAPPY_PATH_CALLS
    assert all(n == 1 for n in keys.values()), {k: n for k, n in keys.items() if n > 1}
    assert len(fleet.upstream.requests) == HAPPY_PATH_CALLS
    assert _replays(fleet.database) >= 1


def test_sigterm_drains_a_worker_and_another_finishes_its_run_at_once(fleet: Fleet) -> None:
    slow_lease = {"FLEET_YAML": "engine: {workers: {heartbeat_s: 0.5, timeout_s: 600}}"}
    draining, drained_id = fleet.start("a", ("run-drained",), env=slow_lease)
    other, other_id = fleet.start("b", env=slow_lease)
    # SIGTERM with a model call in flight: it must finish and be recorded, not repeated.
    fleet.wait_calls(9, in_flight=True)
    code, out, err = _stop(draining)
    assert code == 0 and "drained idle=True" in out, err
    assert "Traceback" not in err, err[-4000:]
    # The lease would expire only after 600 s: the drain itself hands the run over (the
    # run's guard is longer only because the shared test machine can be very slow).
    row = fleet.run("run-drained")
    code_b, _out, err_b = _stop(other)

    assert row.status == "succeeded", (row.failure_reason, err_b)
    assert code_b == 0, err_b
    drained = fleet.worker(drained_id)
    assert (drained.state, drained.recovered_by) == ("recovered", other_id)
    keys = call_keys(fleet.upstream.requests)
    assert len(keys) == HAPPY_PATH_CALLS
    assert all(n == 1 for n in keys.values()), {k: n for k, n in keys.items() if n > 1}
    assert len(fleet.upstream.requests) == HAPPY_PATH_CALLS
