"""Soak: N runs of the scripted pipeline on W engine workers sharing one PostgreSQL
database, while a random worker is SIGKILLed every 10-30 s (and a new one started).

``python -m bench.soak [--runs 200] [--workers 3] [--gateways 2] [--cap 4] [--max-active 2]
[--kill-every 10 30] [--latency 0.05] [--seed 14] [--json PATH]`` with
``ORCHESTRA_TEST_DATABASE_URL`` (or ``--database-url``) naming a PostgreSQL server; a
scratch database is created on it and dropped afterwards. The workers call ``--gateways``
``orchestra gateway --reuse-port`` replicas on one port, sharing the database and a Redis
(``--redis-url``; default ``$ORCHESTRA_TEST_REDIS_URL`` or 127.0.0.1:6379), which keep
each model call's answer under its ``Idempotency-Key``; ``--gateways 0`` gives each
worker a gateway of its own, in its process, as before. A worker takes a new run while
fewer than ``--max-active`` runs are active in it (counting runs it took over from dead
workers) and fewer than ``--max-active`` × ``--workers`` in the whole soak, as a shared run
queue's global concurrency would hold them.

Reports: every run's end (succeeded, or failed with its reason, or not finished), model
calls made more than once (counted at the scripted upstream, per run, step and turn) and
how many calls were in flight at the kills, ledger entries lost (calls the upstream
answered with no ledger row), workers recovered and live workers taken for dead (recovered
without having been killed: their lease expired under load), recoveries whose claim another
reaper took over part-way (their reaper stalled longer than a lease), and the most agent slots
held at once (sampled every 0.25 s from the slot table) against the cap, and the calls
the gateways answered from a kept answer (replays, from their audit log). Leases: a
heartbeat every second, dead after 15 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from orchestra.accounting import Accounting
from orchestra.config import load_config
from orchestra.demo import scripted_config_yaml
from orchestra.store import normalise_url, open_database
from orchestra.testing import FakeUpstream
from orchestra.testing.scripted import ScriptedModel, create_sample_repository

ROOT = Path(__file__).resolve().parents[2]
ORCHESTRA = str(Path(sys.executable).parent / "orchestra")
REPLAYS = "select count(*) from gateway_audit where action = 'gateway.idempotent_replay'"
SLOTS_HELD = "select count(*) from engine_slot_requests where state = 'granted'"

# A run recorded but whose workflow never started (its worker died in between) has
# ended too: nothing will ever run it.
ENDED = (
    "select count(*) from engine_runs r where r.status <> 'running' or ("
    "not exists (select 1 from dbos.workflow_status w where w.workflow_uuid = r.id) "
    "and r.created_at < now() - interval '60 seconds')"
)
ORPHANS = (
    "select id from engine_runs r where r.status = 'running' and "
    "not exists (select 1 from dbos.workflow_status w where w.workflow_uuid = r.id) "
    "and r.created_at < now() - interval '60 seconds'"
)


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A throw-away database on ``url``'s server."""
    admin = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    name = f"orchestra_soak_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answering(url: str) -> str | None:
    """The pid of the replica that answered ``/readyz`` (``None``: not ready)."""
    import httpx

    try:
        ready = httpx.get(f"{url}/readyz", timeout=5)
    except httpx.HTTPError:
        return None
    return str(ready.json()["replica"]).rpartition(":")[2] if ready.status_code == 200 else None


@contextmanager
def gateway_replicas(
    home: Path, database: str, upstream_url: str, count: int, redis: str
) -> Iterator[dict[str, str]]:
    """``count`` ``orchestra gateway --reuse-port`` processes on one port, on ``database``
    and sharing ``redis``, in front of the scripted upstream; yields the environment that
    points a soak worker at them (their URL and a developer's key)."""
    import redis as redis_client

    prefix = f"orchestra-soak-{uuid.uuid4().hex[:12]}"
    config = home / "gateway.yaml"
    shared = f"gateway: {{shared_state: {{url: '{redis}', prefix: {prefix}, timeout_s: 5}}}}\n"
    config.write_text(scripted_config_yaml(upstream_url, shared))
    opened = open_database(database)
    accounting = Accounting(opened, load_config(config), home=home)
    key = accounting.keys.create("developer", None)[0]
    accounting.close()
    opened.dispose()
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "ORCHESTRA_HOME": str(home)}
    command = [ORCHESTRA, "gateway", "--config", str(config), "--port", str(port)]
    command += ["--database-url", database, "--reuse-port"]
    replicas = []
    for n in range(count):
        with (home / f"gateway-{n}.log").open("wb") as log:
            replicas.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
    url = f"http://127.0.0.1:{port}"
    try:
        wanted, seen = {str(p.pid) for p in replicas}, set[str]()
        deadline = time.monotonic() + 300
        while not wanted <= seen:
            if time.monotonic() > deadline or any(p.poll() is not None for p in replicas):
                raise RuntimeError(f"the gateway replicas did not start; see {home}/gateway-*.log")
            seen.add(_answering(url) or "")
            time.sleep(0.05)
        yield {"SOAK_GATEWAY_URL": url, "ORCHESTRA_GATEWAY_KEY": key}
    finally:
        for replica in replicas:
            replica.terminate()  # SIGTERM: each commits its ledger queue
        for replica in replicas:
            replica.wait(timeout=120)
        client = redis_client.Redis.from_url(redis)
        for name in client.scan_iter(f"{prefix}*"):
            client.delete(name)
        client.close()


@dataclass
class Soak:
    """The workers, the kills and the samples of one soak."""

    home: Path
    url: str
    upstream: FakeUpstream
    max_active: int
    settings: str
    gateway_env: dict[str, str] = field(default_factory=dict)
    """Points the workers at the shared gateway replicas (empty: one gateway each)."""
    active_limit: int = 0
    """Most runs active at once in the whole soak (0: no limit beyond each worker's)."""
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    kills: list[dict[str, Any]] = field(default_factory=list)
    started: int = 0

    def start_worker(self) -> str:
        """Start one worker; returns its executor id once its engine is up."""
        self.started += 1
        ready = self.home / f"ready-{self.started}"
        args = [str(self.home), self.url, self.upstream.base_url, str(ready)]
        with (self.home / f"worker-{self.started}.log").open("wb") as stderr:
            worker = subprocess.Popen(
                [sys.executable, "-m", "bench.soak.worker", *args, str(self.max_active)],
                cwd=ROOT,
                env={
                    **os.environ,
                    "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
                    "ORCHESTRA_HOME": str(self.home),
                    "SOAK_YAML": self.settings,
                    "SOAK_ACTIVE_LIMIT": str(self.active_limit),
                    # The sample repository's tests need no plugin: pytest starts faster.
                    "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                    **self.gateway_env,
                },
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        while not ready.exists():
            if worker.poll() is not None:
                log = (self.home / f"worker-{self.started}.log").read_text(errors="replace")
                raise RuntimeError(
                    f"worker {self.started} exited with {worker.returncode} before its engine "
                    f"was up; the end of its log:\n{log[-4000:]}"
                )
            time.sleep(0.1)
        executor = ready.read_text()
        self.workers[executor] = worker
        return executor

    def kill_one(self, rng: random.Random) -> None:
        """SIGKILL a random worker, put back the runs it claimed but never started, and
        start a new worker in its place."""
        executor = rng.choice(sorted(self.workers))
        worker = self.workers.pop(executor)
        os.kill(worker.pid, signal.SIGKILL)
        in_flight = self.upstream.in_flight
        worker.wait()
        self.kills.append({"at": time.time(), "executor": executor, "in_flight": in_flight})
        self.requeue_unstarted(executor)
        self.start_worker()

    def requeue_unstarted(self, executor: str) -> None:
        """Runs a dead worker claimed but never recorded go back to the inbox."""
        if not executor:  # ``claimed/`` itself: every worker's claims
            raise ValueError("requeue_unstarted needs a worker's executor id")
        claimed = self.home / "claimed" / executor
        if not claimed.exists():
            return
        engine = create_engine(normalise_url(self.url))
        with engine.connect() as conn:
            known = set(conn.execute(text("select id from engine_runs")).scalars())
        engine.dispose()
        for entry in claimed.iterdir():
            if entry.name not in known:
                entry.rename(self.home / "inbox" / entry.name)

    def stop(self) -> None:
        """SIGTERM every worker (they drain) and wait for them."""
        for worker in self.workers.values():
            worker.send_signal(signal.SIGTERM)
        for worker in self.workers.values():
            worker.wait(timeout=300)


def run_of_request(body: dict[str, Any]) -> tuple[str, str, int] | None:
    """(run, step, turn) of a model call, from its first message's markers."""
    messages = body.get("messages") or []
    if not messages:
        return None
    first = messages[0]["content"]
    words = first if isinstance(first, str) else json.dumps(first)
    run = words.split("[soak ", 1)[1].split("]", 1)[0] if "[soak " in words else "?"
    step = next((line[6:] for line in words.splitlines() if line.startswith("Step: ")), "?")
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    return run, step, turn


def _end(end: tuple[str, str | None] | None) -> str:
    if end is None:
        return "never started"
    status, reason = end
    return f"{status}: {reason}" if reason else status


def report(soak: Soak, run_ids: list[str], cap: int, most_slots: int) -> dict[str, Any]:
    """The soak's figures, from the database and the upstream's record."""
    engine = create_engine(normalise_url(soak.url))
    with engine.connect() as conn:
        rows = conn.execute(text("select id, status, failure_reason from engine_runs")).all()
        orphans = set(conn.execute(text(ORPHANS)).scalars())
        reaped = set(
            conn.execute(
                text("select executor_id from engine_workers where recovered_by is not null")
            ).scalars()
        )
        ledger = Counter(
            conn.execute(text("select run_id from gateway_ledger where run_id is not null"))
            .scalars()
            .all()
        )
        replays = int(conn.execute(text(REPLAYS)).scalar_one())
    engine.dispose()
    ends = {row.id: (row.status, row.failure_reason) for row in rows}
    for run_id in orphans:
        ends[run_id] = ("not started", "its worker died between recording it and starting it")
    calls = Counter(
        key for r in soak.upstream.requests if (key := run_of_request(r.json or {})) is not None
    )
    per_run = Counter(run for run, _step, _turn in calls.elements())
    lost = sum(max(0, per_run[run] - ledger[run]) for run in run_ids)
    reasons = Counter(_end(ends.get(r)) for r in run_ids)
    return {
        "runs": len(run_ids),
        "succeeded": reasons["succeeded"],
        "ends": dict(reasons),
        "model_calls": sum(calls.values()),
        "repeated_model_calls": sum(n - 1 for n in calls.values() if n > 1),
        "calls_in_flight_at_kills": sum(k["in_flight"] for k in soak.kills),
        "calls_answered_from_a_kept_answer": replays,
        "kills": len(soak.kills),
        "workers_recovered": len(reaped),
        "live_workers_taken_for_dead": sorted(reaped - {k["executor"] for k in soak.kills}),
        "recovery_claims_taken_over": _logged(soak.home, "lost its claim on worker"),
        "ledger_entries": sum(ledger[r] for r in run_ids),
        "ledger_entries_lost": lost,
        "cap": cap,
        "most_slots_held": most_slots,
    }


def _logged(home: Path, words: str) -> int:
    """How many lines of the workers' logs say ``words``."""
    return sum(
        line.count(words)
        for log in home.glob("worker-*.log")
        for line in log.read_text(errors="replace").splitlines()
    )


def drive(the_soak: Soak, args: argparse.Namespace, database: str, runs: int) -> int:
    """Start the workers, kill one every ``--kill-every`` seconds until every run has
    ended (or ``--timeout``), then drain them; returns the most slots held at once."""
    rng = random.Random(args.seed)
    for _ in range(args.workers):
        the_soak.start_worker()
    engine = create_engine(normalise_url(database))
    most, started = 0, time.monotonic()
    next_kill, next_note = started + rng.uniform(*args.kill_every), started
    try:
        while time.monotonic() - started < args.timeout:
            with engine.connect() as conn:
                most = max(most, int(conn.execute(text(SLOTS_HELD)).scalar_one()))
                ended = conn.execute(text(ENDED)).scalar_one()
            if ended >= runs:
                break
            if time.monotonic() >= next_note:
                print(
                    f"{time.monotonic() - started:.0f} s: {ended} of {runs} runs ended, "
                    f"{len(the_soak.kills)} kills",
                    file=sys.stderr,
                    flush=True,
                )
                next_note += 60
            if time.monotonic() >= next_kill:
                the_soak.kill_one(rng)
                next_kill = time.monotonic() + rng.uniform(*args.kill_every)
            time.sleep(0.25)
    finally:
        engine.dispose()
        the_soak.stop()
    return most


@contextmanager
def _soak_home(keep: Path | None) -> Iterator[str]:
    """A temporary folder for the soak, removed afterwards unless kept under ``keep``."""
    if keep is None:
        with tempfile.TemporaryDirectory() as folder:
            yield folder
        return
    keep.mkdir(parents=True, exist_ok=True)
    yield tempfile.mkdtemp(prefix="soak-", dir=keep)


def soak(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Run the soak on a scratch database of ``url``'s server; returns its figures."""
    run_ids = [f"soak-{n:03d}" for n in range(args.runs)]
    settings = (
        f"engine: {{max_concurrent_agents: {args.cap}, workers: {{heartbeat_s: 1, timeout_s: 15}}}}"
    )
    with (
        scratch_database(url) as database,
        _soak_home(args.keep_home) as folder,
        FakeUpstream.start() as upstream,
    ):
        if args.keep_home is not None:
            print(f"the soak's folder (workers' and gateways' logs) is kept: {folder}")
        upstream.responder = ScriptedModel("happy", latency_s=args.latency)
        home = Path(folder)
        (home / "inbox").mkdir()
        for run_id in run_ids:
            create_sample_repository(home / "repos" / run_id)
            (home / "inbox" / run_id).touch()
        started = time.monotonic()
        with ExitStack() as gateways:
            env: dict[str, str] = {}
            if args.gateways:
                replicas = gateway_replicas(
                    home, database, upstream.base_url, args.gateways, args.redis_url
                )
                env = gateways.enter_context(replicas)
            the_soak = Soak(
                home,
                database,
                upstream,
                args.max_active,
                settings,
                env,
                active_limit=args.max_active * args.workers,
            )
            most = drive(the_soak, args, database, len(run_ids))
        figures = report(the_soak, run_ids, args.cap, most)  # the replicas have stopped
        figures["gateways"] = args.gateways
        figures["seconds"] = round(time.monotonic() - started, 1)
        return figures


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="200 for the documented figures")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument(
        "--gateways", type=int, default=2, help="shared gateway replicas (0: one per worker)"
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("ORCHESTRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    parser.add_argument("--cap", type=int, default=4, help="organisation-wide agent cap")
    parser.add_argument("--max-active", type=int, default=2, help="runs per worker at once")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(10.0, 30.0))
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per model call")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--database-url", default=os.environ.get("ORCHESTRA_TEST_DATABASE_URL"))
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--keep-home",
        type=Path,
        default=None,
        help="keep the soak's folder (the workers' and gateways' logs) in this folder",
    )
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if not args.database_url:
        print("soak skipped: it needs PostgreSQL (--database-url or ORCHESTRA_TEST_DATABASE_URL)")
        return 0
    figures = soak(args, args.database_url)
    for name, value in figures.items():
        print(f"{name}: {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0
