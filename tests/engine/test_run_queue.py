"""The shared run queue on PostgreSQL, with separate worker processes on one database and
state folder (the scripted model behind each worker's gateway, calls counted at the fake
upstream): queued runs spread over the workers, each taken once and each model call made
once; a SIGTERM-drained worker takes nothing new while another finishes the rest. And the
reaper's periodic sweep of workflows stranded on a worker that already left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dbos import DBOS
from sqlalchemy import text

from orchestra.app import Orchestra
from orchestra.demo import scripted_config, scripted_stack
from orchestra.engine import EngineRuntime, HttpModelClient, RosterAgents
from orchestra.engine.gateway_link import LocalRunKeys, run_developer
from orchestra.engine.recovery import runs_queue_name
from orchestra.engine.runs import FINAL_STATUSES, RunStore
from orchestra.engine.workers import WorkerInfo, WorkerRegistry
from orchestra.errors import EngineError
from orchestra.store import Database, open_database
from orchestra.testing import FakeUpstream
from orchestra.testing.scripted import SAMPLE_TASK, ScriptedModel, create_sample_repository
from orchestra.testing.steps import RecordedRequest
from tests.conftest import POSTGRES_ENV, MigratedTemplates, scratch_postgres_database
from tests.engine.helpers import HAPPY_PATH_CALLS, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ONE_AT_A_TIME = "engine: {workers: {heartbeat_s: 0.5, timeout_s: %s, max_active: 1}}"
"""Heartbeats every 0.5 s; one queued run at a time per worker."""

TOOK = "from the run queue"
"""What a worker logs when it takes a run (``orchestra.engine.run_queue.take_run``)."""


def task_of(run_id: str) -> str:
    """The task of queued run ``run_id``: the sample task, marked with its run."""
    return f"{SAMPLE_TASK} [queued {run_id}]"


def calls_by_run(requests: list[RecordedRequest]) -> Counter[tuple[str, str, int]]:
    """(run, step, turn) of every model call the upstream received."""
    keys: Counter[tuple[str, str, int]] = Counter()
    for request in requests:
        messages = (request.json or {}).get("messages") or []
        if not messages:
            continue
        first = messages[0]["content"]
        words = first if isinstance(first, str) else json.dumps(first)
        run = words.split("[queued ", 1)[1].split("]", 1)[0] if "[queued " in words else "?"
        step = next((line[6:] for line in words.splitlines() if line.startswith("Step: ")), "?")
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        keys[(run, step, turn)] += 1
    return keys


@dataclass
class QueueFleet:
    """Queue workers on one scratch database, state folder and scripted upstream."""

    tmp: Path
    url: str
    upstream: FakeUpstream
    agents: Path
    database: Database
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    def start(self, name: str, timeout_s: int = 5) -> str:
        """Start queue worker ``name``; its executor id once its engine is up."""
        ready = self.tmp / f"ready-{name}"
        args = [str(self.home), self.url, self.upstream.base_url, str(self.agents), str(ready)]
        with self.log(name).open("wb") as stderr:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tests.engine.queue_worker", *args],
                cwd=ROOT,
                env={
                    **os.environ,
                    "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
                    "ORCHESTRA_HOME": str(self.home),
                    "FLEET_YAML": ONE_AT_A_TIME % timeout_s,
                },
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        self.processes[name] = worker
        deadline = time.monotonic() + 300  # guards against a hang (the machine is shared)
        while not ready.exists():
            assert worker.poll() is None, self.log(name).read_text()[-3000:]
            assert time.monotonic() < deadline, f"worker {name} did not start"
            time.sleep(0.05)
        return ready.read_text()

    def log(self, name: str) -> Path:
        return self.tmp / f"worker-{name}.log"

    def took(self, name: str) -> list[str]:
        """The runs worker ``name`` took from the queue, in order (from its log)."""
        lines = self.log(name).read_text().splitlines()
        return [line.split(" took run ", 1)[1].split()[0] for line in lines if TOOK in line]

    def submit(self, run_ids: list[str]) -> None:
        """Queue ``run_ids`` as ``orchestra run --queue`` does (a runtime not launched)."""
        config = scripted_config(self.upstream.base_url, "")
        services = Orchestra(database_url=self.url, home=self.home, config_given=config)
        accounting = services.accounting()
        developer, team = run_developer(config)
        client = HttpModelClient("http://127.0.0.1:9", "")
        try:
            runtime = services.engine(client, run_keys=LocalRunKeys(accounting, developer, team))
            for run_id in run_ids:
                repo = create_sample_repository(self.home / "repos" / run_id)
                assert runtime.submit_run(task_of(run_id), repo, run_id=run_id) == run_id
                assert runtime.services.runs.get(run_id).status == "queued"
        finally:
            client.close()
            accounting.close()
            services.close()

    def submit_cli(self, label: str, monkeypatch: pytest.MonkeyPatch) -> str:
        """Queue a run with ``orchestra run --queue --wait`` (marked ``label``), which
        follows it until it ends; its run id."""
        from typer.testing import CliRunner

        from orchestra.cli.app import app
        from orchestra.demo import scripted_config_yaml

        config = self.tmp / "orchestra.yaml"
        config.write_text(scripted_config_yaml(self.upstream.base_url, ""))
        monkeypatch.setenv("ORCHESTRA_CONFIG", str(config))
        monkeypatch.setenv("ORCHESTRA_HOME", str(self.home))
        monkeypatch.setenv("ORCHESTRA_DATABASE_URL", self.url)
        repo = create_sample_repository(self.home / "repos" / label)
        argv = ["run", task_of(label), "--repo", str(repo), "--queue", "--wait"]
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, (result.output, result.stderr)  # 0: it succeeded
        out = " ".join(result.stdout.split())
        assert "queued for a worker" in out, out
        run_id = out.split("run ", 1)[1].split()[0]
        assert f"run {run_id}: succeeded" in out, out
        return run_id

    def wait_runs(self, run_ids: list[str], timeout_s: float = 1800) -> dict[str, Any]:
        """Wait for every run to end (a guard against a hang, not a timing target)."""
        runs = RunStore(self.database)
        deadline = time.monotonic() + timeout_s
        while True:
            rows = {r: runs.get(r) for r in run_ids}
            if all(row.status in FINAL_STATUSES for row in rows.values()):
                return rows
            waiting = {r: row.status for r, row in rows.items()}
            assert time.monotonic() < deadline, f"runs still going: {waiting}"
            time.sleep(0.5)

    def wait_for(self, what: str, ready: Any, timeout_s: float = 900) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    def stop(self, name: str) -> tuple[int, str]:
        """SIGTERM worker ``name``; its exit code and stdout."""
        worker = self.processes[name]
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=300)
        return worker.returncode, out.decode()

    def worker(self, executor_id: str) -> WorkerInfo:
        infos = WorkerRegistry(self.database, timeout_s=5).list()
        return next(i for i in infos if i.executor_id == executor_id)


@pytest.fixture
def queue_fleet(
    tmp_path: Path, pipeline_agents: object, migrated_templates: MigratedTemplates
) -> Iterator[QueueFleet]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    template = migrated_templates.postgres_database(url)
    with (
        scratch_postgres_database(url, template) as scratch,
        FakeUpstream.start() as upstream,
    ):
        upstream.responder = ScriptedModel("happy", latency_s=0.05)
        database = open_database(scratch)
        fleet = QueueFleet(tmp_path, scratch, upstream, tmp_path / "agents", database)
        try:
            yield fleet
        finally:
            for process in fleet.processes.values():
                if process.poll() is None:
                    process.kill()
                process.communicate(timeout=60)
            database.dispose()


def _each_call_once(fleet: QueueFleet, run_ids: list[str]) -> None:
    keys = calls_by_run(fleet.upstream.requests)
    assert {run for run, _step, _turn in keys} == set(run_ids)
    assert len(keys) == HAPPY_PATH_CALLS * len(run_ids)
    assert all(n == 1 for n in keys.values()), {k: n for k, n in keys.items() if n > 1}
    assert len(fleet.upstream.requests) == HAPPY_PATH_CALLS * len(run_ids)


def test_queued_runs_spread_over_the_workers_each_taken_once(
    queue_fleet: QueueFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = queue_fleet.start("a")
    b = queue_fleet.start("b")
    labels = [f"run-q{n}" for n in range(4)]
    queue_fleet.submit(labels[:3])
    by_cli = queue_fleet.submit_cli(labels[3], monkeypatch)  # `orchestra run --queue --wait`
    run_ids = [*labels[:3], by_cli]
    rows = queue_fleet.wait_runs(run_ids)
    assert queue_fleet.stop("a")[0] == 0
    assert queue_fleet.stop("b")[0] == 0

    assert {r: row.status for r, row in rows.items()} == dict.fromkeys(run_ids, "succeeded")
    took_a, took_b = queue_fleet.took("a"), queue_fleet.took("b")
    assert took_a and took_b, (took_a, took_b)  # both workers did work
    assert sorted(took_a + took_b) == sorted(run_ids)  # every run taken once, none twice
    pids = {queue_fleet.processes["a"].pid: took_a, queue_fleet.processes["b"].pid: took_b}
    assert all(rows[r].worker_pid == pid for pid, taken in pids.items() for r in taken)
    _each_call_once(queue_fleet, labels)
    assert {queue_fleet.worker(a).state, queue_fleet.worker(b).state} <= {
        "drained",
        "recovered",
    }


def test_a_drained_worker_takes_nothing_new_and_the_other_finishes_the_rest(
    queue_fleet: QueueFleet,
) -> None:
    # A lease of 600 s: only the drain can hand the draining worker's run over.
    a = queue_fleet.start("a", timeout_s=600)
    b = queue_fleet.start("b", timeout_s=600)
    run_ids = [f"run-d{n}" for n in range(5)]
    queue_fleet.submit(run_ids)
    queue_fleet.wait_for("both workers to take a run", lambda: bool(queue_fleet.took("a")))
    queue_fleet.wait_for("both workers to take a run", lambda: bool(queue_fleet.took("b")))
    code, out = queue_fleet.stop("a")  # mid-queue: runs are still waiting
    log_a = queue_fleet.log("a").read_text()
    assert code == 0 and "drained idle=True" in out, log_a[-3000:]
    assert "Traceback" not in log_a, log_a[-4000:]
    rows = queue_fleet.wait_runs(run_ids)
    assert queue_fleet.stop("b")[0] == 0

    assert {r: row.status for r, row in rows.items()} == dict.fromkeys(run_ids, "succeeded")
    # Nothing taken once it began draining.
    lines = log_a.splitlines()
    draining = next(n for n, line in enumerate(lines) if "draining" in line)
    assert not [line for line in lines[draining:] if TOOK in line]
    took_a, took_b = queue_fleet.took("a"), queue_fleet.took("b")
    assert not set(took_a) & set(took_b)  # none taken twice
    assert len(took_b) >= len(run_ids) - len(took_a)  # the other took the rest
    # The run a was working on went to b with the drain; nothing else finished on a.
    pid_a = queue_fleet.processes["a"].pid
    assert {r for r, row in rows.items() if row.worker_pid == pid_a} <= set(took_a)
    assert (queue_fleet.worker(a).state, queue_fleet.worker(a).recovered_by) == ("recovered", b)
    _each_call_once(queue_fleet, run_ids)  # a drain repeats no call


def test_a_straggler_on_a_gone_workers_queue_is_swept_once(
    tmp_path: Path, pipeline_agents: RosterAgents, migrated_templates: MigratedTemplates
) -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    fast = "engine: {workers: {heartbeat_s: 0.5, timeout_s: 5, sweep_s: 1}}"
    with (
        scratch_postgres_database(url, migrated_templates.postgres_database(url)) as scratch,
        scripted_stack(
            tmp_path / "home", agents=pipeline_agents, database_url=scratch, extra_yaml=fast
        ) as stack,
    ):
        registry = WorkerRegistry(stack.database, timeout_s=5)
        # A worker that left long ago, recovered by a reaper...
        registry.acquire("gone", "elsewhere", 1)
        assert registry.claim_gone("gone", "someone") is False  # not gone yet: running
        registry.set_state("gone", "stopped")
        # ...and then a run's workflow moved onto its own runs queue (what a reaper that
        # lost its lease mid-recovery leaves behind): nobody serves that queue.
        repo = create_sample_repository(tmp_path / "repo")
        runtime: EngineRuntime = stack.runtime
        run_id = runtime.submit_run(task_of("run-s"), repo, run_id="run-s")
        DBOS.resume_workflow(run_id, queue_name=runs_queue_name("gone"))
        row = runtime.wait(run_id, timeout_s=900)  # a guard against a hang
        gone = next(w for w in registry.list() if w.executor_id == "gone")
        with stack.database.engine.connect() as conn:
            queues = conn.execute(
                text("select queue_name from dbos.workflow_status where workflow_uuid = :r"),
                {"r": run_id},
            ).scalar_one()
    assert row.status == "succeeded", row.failure_reason
    assert (gone.state, gone.recovered_by) == ("recovered", runtime.executor_id)
    assert gone.recovered_workflows == 1  # moved once
    assert queues == runs_queue_name(runtime.executor_id)
    keys = calls_by_run(stack.upstream.requests if stack.upstream else [])
    assert len(keys) == HAPPY_PATH_CALLS and all(n == 1 for n in keys.values())


def test_a_gone_worker_is_claimed_for_a_sweep_by_one_reaper(
    migrated_templates: MigratedTemplates,
) -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    with scratch_postgres_database(url, migrated_templates.postgres_database(url)) as scratch:
        database = open_database(scratch)
        registry = WorkerRegistry(database, timeout_s=10)
        for name in ("left", "recovered", "alive"):
            registry.acquire(name, "h", 1)
        registry.set_state("left", "stopped")
        assert registry.claim_dead("r0") == []
        registry.set_state("recovered", "drained")
        assert registry.claim_dead("r0") == ["recovered"]
        registry.finish_recovery("recovered", "r0", 2)
        assert sorted(registry.gone()) == ["left", "recovered"]
        won: list[tuple[str, str]] = []
        barrier = threading.Barrier(6)

        def claim(reaper: str) -> None:
            barrier.wait()
            for gone in ("left", "recovered", "alive"):
                if registry.claim_gone(gone, reaper):
                    won.append((gone, reaper))

        threads = [threading.Thread(target=claim, args=(f"r{n}",)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(g for g, _ in won) == ["left", "recovered"]  # each by one reaper
        for gone, reaper in won:
            registry.finish_recovery(gone, reaper, 1)
        counts = {w.executor_id: w.recovered_workflows for w in registry.list()}
        assert counts == {"left": 1, "recovered": 3, "alive": 0}  # counts add up
        database.dispose()


def test_queueing_a_run_is_refused_on_sqlite(tmp_path: Path) -> None:
    services = Orchestra(
        database_url=f"sqlite:///{tmp_path / 'o.db'}",
        home=tmp_path,
        config_given=scripted_config("http://127.0.0.1:9", ""),
    )
    client = HttpModelClient("http://127.0.0.1:9", "")
    try:
        runtime = services.engine(client)
        repo = create_sample_repository(tmp_path / "repo")
        with pytest.raises(EngineError, match="only on PostgreSQL") as refused:
            runtime.submit_run(SAMPLE_TASK, repo)
        assert refused.value.hint and "orchestra worker" in refused.value.hint
        assert runtime.services.runs.list_runs() == []  # nothing recorded
        runtime.take_queued_runs = True
        with pytest.raises(EngineError, match="only on PostgreSQL"):
            runtime.launch()
    finally:
        client.close()
        services.close()


def test_orchestra_run_queue_is_refused_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from orchestra.cli.app import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ORCHESTRA_DATABASE_URL", raising=False)
    repo = create_sample_repository(tmp_path / "repo")
    result = CliRunner().invoke(app, ["run", SAMPLE_TASK, "--repo", str(repo), "--queue"])
    assert result.exit_code == 2, result.output
    err = " ".join(result.stderr.split())
    assert "runs are queued for workers only on PostgreSQL" in err
    assert "fix:" in err and "orchestra worker" in err


def test_the_worker_taking_a_queued_run_prepares_it_in_its_process(tmp_path: Path) -> None:
    from orchestra.engine.artifacts import POOL_REF
    from orchestra.engine.draining import GATE
    from orchestra.engine.run_queue import take_run

    services = Orchestra(
        database_url=f"sqlite:///{tmp_path / 'o.db'}",
        home=tmp_path,
        config_given=scripted_config("http://127.0.0.1:9", ""),
    )
    client = HttpModelClient("http://127.0.0.1:9", "")
    try:
        svc = services.engine(client).services
        pool = RosterAgents.load()
        asked: list[str] = []

        def pools(developer: str) -> RosterAgents:
            asked.append(developer)
            return pool

        svc.pools = pools
        svc.runs.create(
            id="run-t", task="t", pipeline="test-first", repo_path=str(tmp_path), status="queued"
        )
        svc.artifacts.put_json("run-t", POOL_REF, {"developer": "ann"}, "pool")
        GATE.reset()
        take_run(svc, "run-t")
        row = svc.runs.get("run-t")
        assert (row.status, row.worker_pid) == ("running", os.getpid())
        assert asked == ["ann"] and svc.agents_for("run-t") is pool  # the run's pool
        assert "run-t" in svc.held_runs
        take_run(svc, "run-t")  # a replay in the same process: nothing again
        assert asked == ["ann"]
    finally:
        client.close()
        services.close()
