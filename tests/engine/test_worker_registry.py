"""The worker registry on PostgreSQL: leases, duplicate executor ids, exactly-once claims
of dead workers (real database; the processes are in tests/engine/test_workers.py)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

from orchestra.engine.workers import (
    SchedulingConflict,
    WorkerConflict,
    WorkerLease,
    WorkerRegistry,
)
from orchestra.store import Database, open_database
from tests.conftest import POSTGRES_ENV, MigratedTemplates, scratch_postgres_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(migrated_templates: MigratedTemplates) -> Iterator[Database]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    with scratch_postgres_database(url, migrated_templates.postgres_database(url)) as scratch:
        database = open_database(scratch)
        yield database
        database.dispose()


def _age(database: Database, executor_id: str, seconds: float) -> None:
    """Make ``executor_id``'s last heartbeat ``seconds`` old (as if it stopped beating)."""
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "update engine_workers set heartbeat_at = now() - make_interval(secs => :s) "
                "where executor_id = :e"
            ),
            {"s": seconds, "e": executor_id},
        )


def _state(registry: WorkerRegistry, executor_id: str) -> str:
    return next(w.state for w in registry.list() if w.executor_id == executor_id)


def test_a_live_executor_id_is_refused_and_a_stopped_one_taken_again(pg: Database) -> None:
    registry = WorkerRegistry(pg, timeout_s=10)
    registry.acquire("w1", "host-a", 101)
    with pytest.raises(WorkerConflict, match="'w1' is held by a live worker") as refused:
        registry.acquire("w1", "host-b", 202)
    assert "pid 101 on host-a" in str(refused.value)
    assert refused.value.hint and "another id" in refused.value.hint
    registry.set_state("w1", "stopped")
    registry.acquire("w1", "host-b", 202)  # a clean stop frees the id
    assert [(w.host, w.pid, w.state) for w in registry.list()] == [("host-b", 202, "running")]


def test_a_dead_workers_id_is_refused_until_its_work_is_recovered(pg: Database) -> None:
    registry = WorkerRegistry(pg, timeout_s=10)
    registry.acquire("w1", "host-a", 101)
    _age(pg, "w1", 60)
    with pytest.raises(WorkerConflict, match="has not been recovered yet"):
        registry.acquire("w1", "host-a", 102)
    registry.acquire("reaper", "host-a", 103)
    assert registry.claim_dead("reaper") == ["w1"]
    registry.finish_recovery("w1", "reaper", 3)
    registry.acquire("w1", "host-a", 102)
    assert _state(registry, "w1") == "running"


def test_a_worker_whose_scheduling_settings_differ_from_a_live_workers_is_refused(
    pg: Database,
) -> None:
    registry = WorkerRegistry(pg, timeout_s=10)
    settings = {"capacity": 4, "topology": "mesh", "people": {"ann": ["a", "-", "-"]}}
    registry.acquire("w1", "host-a", 101, settings)
    registry.acquire("w2", "host-b", 202, dict(settings))  # the same settings: welcome
    registry.acquire("solo", "host-b", 203)  # takes no slots: nothing to agree on
    other = {**settings, "capacity": 8}
    with pytest.raises(SchedulingConflict, match="capacity 8 here, 4 there") as refused:
        registry.acquire("w3", "host-c", 303, other)
    assert "live worker 'w1' (pid 101 on host-a)" in str(refused.value)
    assert refused.value.hint and "drain the running workers" in refused.value.hint
    assert "w3" not in {w.executor_id for w in registry.list()}  # refused: no row taken

    # Once no live worker holds the old settings (one stopped, one died), the new ones start.
    registry.set_state("w1", "stopped")
    _age(pg, "w2", 11)
    registry.acquire("w3", "host-c", 303, other)
    with pytest.raises(SchedulingConflict, match="capacity 4 here, 8 there"):
        registry.acquire("w1", "host-a", 104, settings)  # a restart with the old settings


def test_two_workers_starting_at_once_with_different_settings_are_not_both_taken(
    pg: Database,
) -> None:
    registry = WorkerRegistry(pg, timeout_s=10)
    start = threading.Barrier(6)
    started: list[str] = []
    refused: list[str] = []

    def acquire(name: str, capacity: int) -> None:
        start.wait()
        try:
            registry.acquire(name, "h", 1, {"capacity": capacity})
            started.append(name)
        except SchedulingConflict:
            refused.append(name)

    threads = [
        threading.Thread(target=acquire, args=(f"w{n}", 4 if n % 2 else 8)) for n in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(started) + len(refused) == 6 and started
    # Whoever started first set the settings; everyone with other settings was refused.
    capacities = {4 if int(name[1:]) % 2 else 8 for name in started}
    assert len(capacities) == 1 and len(started) == 3, (started, refused)


def test_only_dead_or_drained_workers_are_claimed_and_each_by_one_reaper(pg: Database) -> None:
    registry = WorkerRegistry(pg, timeout_s=10)
    for name in ("alive", "dead", "drained", "stopped"):
        registry.acquire(name, "h", 1)
    _age(pg, "dead", 11)
    registry.set_state("drained", "drained")
    registry.set_state("stopped", "stopped")
    reapers = [f"reaper-{n}" for n in range(6)]
    for reaper in reapers:
        registry.acquire(reaper, "h", 1)
    won: dict[str, list[str]] = {}
    start = threading.Barrier(len(reapers))

    def claim(reaper: str) -> None:
        start.wait()
        won[reaper] = registry.claim_dead(reaper)

    threads = [threading.Thread(target=claim, args=(r,)) for r in reapers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claims = sorted(name for names in won.values() for name in names)
    assert claims == ["dead", "drained"]  # each once, over six concurrent reapers
    assert _state(registry, "dead") == _state(registry, "drained") == "recovering"
    assert _state(registry, "alive") == "running" and _state(registry, "stopped") == "stopped"
    # The dead worker, back from a pause, finds its lease gone: it must take no more work.
    assert registry.heartbeat("alive") and not registry.heartbeat("dead")


def test_the_lease_thread_beats_and_a_lost_lease_stops_the_worker(pg: Database) -> None:
    registry = WorkerRegistry(pg, timeout_s=10)
    registry.acquire("w1", "h", 1)
    _age(pg, "w1", 5)
    lost: list[bool] = []
    lease = WorkerLease(registry, "w1", 0.05, on_lost=lambda: lost.append(True))
    lease.start()
    try:
        deadline = time.monotonic() + 10
        while registry.list()[0].heartbeat_age_s > 1:
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)
        registry.set_state("w1", "drained")  # as if another worker had taken its work
        assert lease.lost.wait(10)
    finally:
        lease.stop()
    assert lost == [True]


def test_a_reapers_claim_held_through_a_long_recovery_is_not_taken_over(pg: Database) -> None:
    """A recovery that takes longer than a lease renews its claim; a claim left alone that
    long is taken for its reaper's death and claimed by another reaper, and the first
    reaper finds it lost and stops."""
    registry = WorkerRegistry(pg, timeout_s=2)
    for name in ("dead", "slow", "other"):
        registry.acquire(name, "h", 1)
    _age(pg, "dead", 60)
    slow = WorkerLease(registry, "slow", 0.05)
    seen: list[bool] = []

    def recover(executor_id: str, still_held: Callable[[], bool]) -> int:
        deadline = time.monotonic() + 3  # longer than a lease
        while time.monotonic() < deadline:
            seen.append(still_held())
            registry.heartbeat("other")
            assert registry.claim_dead("other") == []  # the claim is live
            time.sleep(0.1)
        return 4

    slow.reap_with(recover)
    slow.tick()
    assert seen and all(seen)
    assert _state(registry, "dead") == "recovered"
    assert next(w.recovered_workflows for w in registry.list() if w.executor_id == "dead") == 4

    # A claim whose reaper stops renewing it is taken over; the reaper then stops moving.
    registry.acquire("dead2", "h", 1)
    _age(pg, "dead2", 60)
    lost_claim: list[bool] = []

    def stalls(executor_id: str, still_held: Callable[[], bool]) -> int:
        time.sleep(2.5)  # the claim is not renewed for longer than a lease...
        registry.heartbeat("slow")  # ...though the reaper itself lives
        registry.heartbeat("other")
        assert registry.claim_dead("other") == ["dead2"]
        time.sleep(0.1)
        lost_claim.append(still_held())
        return 1

    slow.reap_with(stalls)
    slow.tick()
    assert lost_claim == [False]
    worker = next(w for w in registry.list() if w.executor_id == "dead2")
    assert (worker.state, worker.recovered_by) == ("recovering", "other")
