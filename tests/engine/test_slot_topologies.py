"""The topology decides which waiting agent step gets the next organisation-wide slot, the
same way in one process on SQLite and over several worker processes on PostgreSQL.

Each test holds the dispatchers back while the steps' requests pile up (``paused``), so
that the first grant sees every request, then lets steps end one at a time (a file per
step) and watches the slot table: nothing depends on how fast the machine is. The
global cap is checked at every sample.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestra.engine.slot_table import SlotTable
from orchestra.scheduling import Placement
from orchestra.store import Database, open_database
from tests.conftest import POSTGRES_ENV, scratch_postgres_database
from tests.engine.slot_harness import (
    TIMEOUT_S,
    InProcess,
    Watcher,
    most_at_once,
    order,
    org_slots,
    record_history,
    release,
)

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Steps:
    """Steps of one test, on either backend."""

    watcher: Watcher
    release: Path
    local: InProcess | None = None
    inbox: Path | None = None
    workers: list[str] = field(default_factory=list)
    table: SlotTable | None = None
    """A table granting under the same policy, for dispatching from the test itself."""
    _next: int = 0

    def start(self, developer: str, *ids: str, hold_s: float = 0.0) -> None:
        """Start steps ``ids`` for ``developer`` (spread over the worker processes), and
        wait until they asked for their slots; ``hold_s``: each ends after that long."""
        if self.local is not None:
            self.local.start(developer, list(ids), hold_s)
        else:
            assert self.inbox is not None
            for step in ids:
                worker = self.workers[self._next % len(self.workers)]
                self._next += 1
                order(self.inbox, worker, step, developer, [step], hold_s)
        if hold_s:
            return
        wanted = set(ids)
        self.watcher.wait_for(
            f"requests of {sorted(wanted)}",
            lambda rows: wanted <= {r.id for r in rows if r.state in ("waiting", "granted")},
        )

    def paused(self) -> Any:
        """No slot is granted inside the block."""
        return self.watcher.paused(self.local.table if self.local is not None else None)

    def end(self, *ids: str) -> None:
        """Let steps ``ids`` end, and wait until they gave their slots back."""
        release(self.release, *ids)
        self.watcher.wait_for(
            f"{ids} released",
            lambda rows: all(r.state == "released" for r in rows if r.id in ids),
        )

    def granted_now(self) -> list[str]:
        """Ids granted and not released, in request order."""
        return [r.id for r in self.watcher.sample() if r.state == "granted"]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A factory: spec -> :class:`Steps`, in this process (SQLite) or in worker processes
    (PostgreSQL; two unless the spec says ``workers``)."""
    made: list[Any] = []
    if request.param == "sqlite":
        database = open_database(f"sqlite:///{tmp_path / 'o.db'}")

        def make_sqlite(spec: dict[str, Any]) -> Steps:
            _record_history(database, spec)
            slots = org_slots(spec, "solo", shared=False)
            rel = tmp_path / "release"
            rel.mkdir()
            local = InProcess(slots, database, f"sqlite:///{tmp_path / 'dbos.sqlite'}", rel)
            made.append(local)
            return Steps(Watcher(database, spec["capacity"]), rel, local=local, table=local.table)

        try:
            yield make_sqlite
        finally:
            for local in made:
                release(tmp_path / "release", "all")
                local.close()
            database.dispose()
        return
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    with scratch_postgres_database(url) as scratch:
        database = open_database(scratch)
        try:
            yield lambda spec: _postgres(spec, scratch, database, tmp_path, made)
        finally:
            _stop(made, tmp_path)
            database.dispose()


def _postgres(
    spec: dict[str, Any], scratch: str, database: Database, tmp_path: Path, made: list[Any]
) -> Steps:
    inbox, rel = tmp_path / "inbox", tmp_path / "release"
    inbox.mkdir()
    rel.mkdir()
    system = "postgresql://" + scratch.split("://", 1)[1]
    full = {**spec, "inbox": str(inbox), "release": str(rel)}
    full |= {"database_url": scratch, "system_url": system}
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(full))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    _record_history(database, spec)
    workers = [f"w{n}" for n in range(spec.get("workers", 2))]
    for name in workers:  # one at a time: the first creates DBOS's system tables
        made.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.engine.slot_worker",
                    str(tmp_path / "spec.json"),
                    name,
                ],
                cwd=ROOT,
                env=env,
            )
        )
        deadline = time.monotonic() + TIMEOUT_S
        while not (inbox / f"{name}.ready").exists():
            assert made[-1].poll() is None, "a slot worker exited before it was up"
            assert time.monotonic() < deadline
            time.sleep(0.1)
    table = org_slots(spec, "test", shared=True).table(database)
    return Steps(
        Watcher(database, spec["capacity"]), rel, inbox=inbox, workers=workers, table=table
    )


def _record_history(database: Database, spec: dict[str, Any]) -> None:
    """The spec's ``history``: ``[developer, agents, days]`` each: that many of the
    developer's steps held slots at every hour of the last days (before any worker starts)."""
    for developer, agents, days in spec.get("history", []):
        squad, tribe, region = spec["people"][developer]
        record_history(database, Placement(developer, squad, tribe, region), agents, days)


def _stop(made: list[Any], tmp_path: Path) -> None:
    if not made:
        return
    release(tmp_path / "release", "all")
    (tmp_path / "inbox" / "stop").write_text("stop")
    for worker in made:
        assert worker.wait(timeout=TIMEOUT_S) == 0


def _spec(topology: str, capacity: int, per_developer: int, people: dict[str, Any], **more: Any):
    return {
        "topology": topology,
        "capacity": capacity,
        "per_developer": per_developer,
        "people": people,
        **more,
    }


FLAT = {"ann": ["-", "-", "-"], "bob": ["-", "-", "-"], "cid": ["-", "-", "-"]}


def test_single_node_grants_first_come_first_served(backend: Any) -> None:
    steps = backend(_spec("single_node", 2, 4, FLAT))
    order_ = [("ann", "s1"), ("bob", "s2"), ("cid", "s3"), ("ann", "s4"), ("bob", "s5")]
    with steps.paused():
        for developer, step in order_:
            steps.start(developer, step)  # one at a time: requested in this order
    steps.watcher.granted(2)
    assert steps.granted_now() == ["s1", "s2"]
    for done, following in [("s1", "s3"), ("s2", "s4"), ("s3", "s5")]:
        steps.end(done)
        steps.watcher.granted(1, id=following)
    steps.end("s4", "s5")
    rows = steps.watcher.rows()
    by_request = [r.granted_at for r in sorted(rows, key=lambda r: r.seq)]
    assert by_request == sorted(by_request)  # granted in the order requested
    assert steps.watcher.peak == 2


def _many_and_one(backend: Any, topology: str) -> list[str]:
    """ann asks for five slots, then bob for one; cap 2. Returns the first two granted."""
    steps = backend(_spec(topology, 2, 2, FLAT))
    with steps.paused():
        for i in range(5):  # one at a time: requested in this order
            steps.start("ann", f"a{i}")
        steps.start("bob", "b0")
    steps.watcher.granted(2)
    first = steps.granted_now()
    release(steps.release, "all")
    steps.watcher.all_released(6)
    return first


def test_mesh_shares_fairly_a_developer_with_many_steps_does_not_starve_one_with_few(
    backend: Any,
) -> None:
    first = _many_and_one(backend, "mesh")
    assert sorted(first) == ["a0", "b0"]  # bob goes before ann's second step


def test_single_node_serves_the_same_queue_in_arrival_order(backend: Any) -> None:
    first = _many_and_one(backend, "single_node")
    assert first == ["a0", "a1"]  # bob, last to ask, waits behind ann


SQUADS = {
    "a1": ["sa", "t", "-"],
    "a2": ["sa", "t", "-"],
    "b1": ["sb", "t", "-"],
}


def test_hierarchical_a_squad_never_runs_more_than_its_quota_while_another_waits(
    backend: Any,
) -> None:
    spec = _spec(
        "hierarchical",
        4,
        4,
        SQUADS,
        units=["sa", "sb"],
        scheduling={"weights": {"sa": 1, "sb": 1}, "tick_s": 0.5},
    )
    steps = backend(spec)
    with steps.paused():
        steps.start("a1", "x1", "x2", "x3")
        steps.start("a2", "x4", "x5")
        steps.start("b1", "y1")
    steps.watcher.granted(3)
    first = steps.granted_now()  # quotas 2 + 2 of a cap of 4: two of sa's, and y1
    assert len(first) == 3 and "y1" in first and all(s.startswith("x") for s in first[:2])
    steps.end("y1")
    assert steps.table is not None
    assert steps.table.dispatch() == []  # two slots idle: squad sa is at its quota
    assert len(steps.granted_now()) == 2
    steps.start("b1", "y2")  # squad sb, under its quota, goes before sa's waiting steps
    steps.watcher.granted(1, id="y2")
    for n in range(3):  # each of sa's steps ending lets one more of sa's start
        running = [s for s in steps.granted_now() if s.startswith("x")]
        assert len(running) == 2
        steps.end(running[0])
        steps.watcher.granted(3 + n, squad="sa")
    release(steps.release, "all")
    steps.watcher.all_released(7)
    assert steps.watcher.peaks[("squad", "sa")] == 2


TRIBES = {
    "p1": ["-", "t1", "-"],
    "p2": ["-", "t1", "-"],
    "q1": ["-", "t2", "-"],
}


def test_federated_a_tribe_under_its_minimum_goes_first_and_idle_capacity_is_lent(
    backend: Any,
) -> None:
    spec = _spec(
        "federated_hierarchical",
        4,
        4,
        TRIBES,
        units=["t1", "t2"],
        scheduling={"weights": {"t1": 1, "t2": 1}, "tick_s": 0.5},
    )
    steps = backend(spec)
    with steps.paused():
        steps.start("p1", "m1", "m2", "m3")
        steps.start("p2", "m4", "m5", "m6")
    steps.watcher.granted(4)
    # t2 asks for nothing: its two guaranteed slots are lent to t1.
    assert len(steps.granted_now()) == 4
    steps.start("q1", "n1", "n2")
    # Taken back as t1's borrowed agents finish: each freed slot goes to t2 (under its
    # minimum) before t1's two waiting steps.
    for n in (1, 2):
        steps.end(next(s for s in steps.granted_now() if s.startswith("m")))
        steps.watcher.granted(n, tribe="t2")
        running = steps.granted_now()
        assert len(running) == 4 and len([s for s in running if s.startswith("n")]) == n
    steps.end(next(s for s in steps.granted_now() if s.startswith("m")))
    steps.watcher.granted(5, tribe="t1")  # t1 back under its minimum: its turn
    release(steps.release, "all")
    steps.watcher.all_released(8)
    assert steps.watcher.peaks[("tribe", "t1")] == 4


def test_the_cap_and_the_per_developer_limit_hold_over_every_worker(backend: Any) -> None:
    """Twelve steps of 0.4 s at once (ann's eight spread over the workers), cap 3, two per
    developer: never more than 3 granted (sampled, and from the recorded grants), never
    more than 2 of ann's."""
    spec = _spec("single_node", 3, 2, FLAT, workers=3)
    steps = backend(spec)
    steps.start("ann", *[f"a{i}" for i in range(8)], hold_s=0.4)
    steps.start("bob", *[f"b{i}" for i in range(4)], hold_s=0.4)
    rows = steps.watcher.all_released(12)
    spans = [(r.granted_at, r.released_at) for r in rows if r.granted_at and r.released_at]
    anns = [(r.granted_at, r.released_at) for r in rows if r.developer == "ann"]
    assert len(spans) == 12
    assert 2 <= most_at_once(spans) <= 3  # type: ignore[arg-type]
    assert most_at_once(anns) <= 2  # type: ignore[arg-type]
    assert steps.watcher.peak <= 3 and steps.watcher.peaks.get(("developer", "ann"), 0) <= 2


def _only_sa_asks_for_four(steps: Steps, granted: int) -> None:
    """Squad sa's developers ask for four slots at once (nobody else asks); the quotas in
    force grant it ``granted`` of them, and a further dispatch grants nothing more."""
    with steps.paused():
        steps.start("a1", "x1", "x2")
        steps.start("a2", "x3", "x4")
    steps.watcher.granted(granted)
    assert steps.table is not None
    assert steps.table.dispatch() == []
    assert len(steps.granted_now()) == granted


@pytest.mark.parametrize(("allocation", "granted"), [("static", 2), ("dynamic", 3)])
def test_dynamic_quotas_follow_the_queue_over_every_worker(
    backend: Any, allocation: str, granted: int
) -> None:
    """Squads of weight 1 + 1, cap 4, only sa asks: static quotas hold it to 2, dynamic
    ones (recomputed from the queue) give it 3, whichever worker grants."""
    scheduling = {"allocation": allocation, "weights": {"sa": 1, "sb": 1}, "tick_s": 0.5}
    steps = backend(_spec("hierarchical", 4, 4, SQUADS, units=["sa", "sb"], scheduling=scheduling))
    _only_sa_asks_for_four(steps, granted)
    release(steps.release, "all")
    steps.watcher.all_released(4)


@pytest.mark.parametrize(("allocation", "granted"), [("static", 3), ("predictive", 2)])
def test_predictive_quotas_keep_room_the_history_says_is_coming_over_every_worker(
    backend: Any, allocation: str, granted: int
) -> None:
    """Squads of weight 3 + 1, cap 4; sb's steps held three slots at every hour of the last
    three days; now only sa asks (four steps). Static quotas (from the weights) give sa 3,
    as dynamic ones (from the queue) would; predictive ones, from the forecast of sb's
    demand, keep two slots for sb and give sa 2, whichever worker grants."""
    scheduling = {"allocation": allocation, "weights": {"sa": 3, "sb": 1}, "tick_s": 0.5}
    spec = _spec(
        "hierarchical",
        4,
        4,
        SQUADS,
        units=["sa", "sb"],
        scheduling=scheduling,
        history=[["b1", 3, 3]],
    )
    steps = backend(spec)
    _only_sa_asks_for_four(steps, granted)
    assert steps.table.forecast_now()["sb"] == pytest.approx(3.0, abs=0.3)
    release(steps.release, "all")
    steps.watcher.all_released(4)
