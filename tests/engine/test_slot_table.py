"""The slot table without DBOS: allocation modes (static, dynamic, predictive) change the
quotas the dispatcher grants under; slots of steps that ended unreleased are reclaimed; a
replayed step finds its own request; on SQLite only this process's requests count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestra.config.scheduling import SchedulingSettings
from orchestra.engine.slot_table import SlotPolicy, SlotTable
from orchestra.scheduling import Placement
from orchestra.store import Database, open_database
from orchestra.store.tables.slots import SlotRequestRow
from tests.engine.slot_harness import record_history

SA = Placement("a1", "sa", "t", "-")
SB = Placement("b1", "sb", "t", "-")


@pytest.fixture
def database(tmp_path: Path) -> Any:
    db = open_database(f"sqlite:///{tmp_path / 'o.db'}")
    yield db
    db.dispose()


def table(
    database: Database,
    allocation: str,
    statuses: dict[str, str] | None = None,
    worker: str = "me",
    shared: bool = False,
    topology: str = "hierarchical",
) -> SlotTable:
    settings = SchedulingSettings(
        allocation=allocation,  # type: ignore[arg-type]
        weights={"sa": 1, "sb": 1},
        tick_s=60,
    )
    policy = SlotPolicy(4, 4, topology, settings, {"a1": SA, "b1": SB}, ("sa", "sb"))
    known = statuses if statuses is not None else {}
    return SlotTable(
        database, policy, worker, shared, lambda ids: {i: known.get(i, "PENDING") for i in ids}
    )


def ask(slots: SlotTable, placement: Placement, *ids: str) -> None:
    for step in ids:
        assert slots.request(step, placement) == "waiting"


def test_static_quotas_hold_a_busy_squad_to_its_share(database: Database) -> None:
    slots = table(database, "static")
    ask(slots, SA, "a1", "a2", "a3", "a4")
    assert slots.dispatch() == ["a1", "a2"]  # quota 2 of 4 however many wait


def test_dynamic_quotas_follow_queue_depth_and_running(database: Database) -> None:
    slots = table(database, "dynamic")
    ask(slots, SA, "a1", "a2", "a3", "a4")
    assert slots.dispatch() == ["a1", "a2", "a3"]  # sa 4 waiting, sb none: quotas 3 / 1
    loads = {(u.level, u.unit): u for u in slots.loads()}
    assert (loads[("squad", "sa")].granted, loads[("squad", "sa")].quota) == (3, 3)
    assert loads[("squad", "sa")].waiting == 1


def test_predictive_quotas_keep_room_for_a_squad_the_history_says_is_coming(
    database: Database,
) -> None:
    record_history(database, SB, agents=3, days=3)  # sb ran three agents at every hour
    slots = table(database, "predictive")
    forecast = slots.forecast_now()
    assert forecast["sb"] == pytest.approx(3.0, abs=0.3) and forecast.get("sa", 0.0) < 0.3
    ask(slots, SA, "a1", "a2", "a3", "a4")
    # Dynamic would give sa 3 of 4 (above); the forecast of sb keeps two for it.
    assert slots.dispatch() == ["a1", "a2"]


def test_quotas_are_recomputed_only_every_interval(database: Database) -> None:
    slots = table(database, "dynamic")
    ask(slots, SB, "b1")
    assert slots.dispatch() == ["b1"]  # sb 1, sa 0: quotas sa 1 / sb 3
    ask(slots, SA, "a1", "a2", "a3")
    assert slots.dispatch() == ["a1"]  # within the interval: the quotas stay
    assert {u.unit: u.quota for u in slots.loads() if u.level == "squad"} == {"sa": 1, "sb": 3}


def test_a_step_that_ended_without_releasing_loses_its_slot(database: Database) -> None:
    ended: dict[str, str] = {}
    slots = table(database, "static", ended, topology="single_node")
    ask(slots, SA, "a1", "a2", "a3", "a4", "a5")
    assert slots.dispatch() == ["a1", "a2", "a3", "a4"]
    ended["a2"] = "CANCELLED"
    record_history(database, SB, agents=1, days=15)  # older than history_days (14) is forgotten
    assert slots.reclaim() == ["a2"]
    assert slots.state("a2") == "released"
    assert slots.dispatch() == ["a5"]
    with database.session() as session:
        kept = session.query(SlotRequestRow).filter(SlotRequestRow.id.like("old-%")).count()
    assert kept == 14 * 24


def test_a_replayed_step_finds_its_grant_and_a_released_one_asks_again(
    database: Database,
) -> None:
    slots = table(database, "static", topology="single_node")
    ask(slots, SA, "a1")
    assert slots.dispatch() == ["a1"]
    elsewhere = table(database, "static", worker="other", topology="single_node")
    assert elsewhere.request("a1", SA) == "granted"  # recovered on another worker
    with database.session() as session:
        row = session.get(SlotRequestRow, "a1")
        assert row is not None and row.worker == "other"
    elsewhere.release("a1")
    assert elsewhere.request("a1", SA) == "waiting"  # replayed after its release


def test_on_sqlite_only_this_processs_requests_count(database: Database) -> None:
    mine = table(database, "static", topology="single_node")
    theirs = table(database, "static", worker="another-process", topology="single_node")
    ask(theirs, SA, *[f"t{i}" for i in range(4)])
    assert theirs.dispatch() == ["t0", "t1", "t2", "t3"]
    ask(mine, SB, "m1")
    assert mine.dispatch() == ["m1"]  # the other process's four do not count here
    shared = table(database, "static", worker="w", shared=True, topology="single_node")
    ask(shared, SB, "s1")
    assert shared.dispatch() == []  # shared (PostgreSQL): five granted, cap 4


def test_tick_grants_at_most_once_per_interval(database: Database) -> None:
    slots = table(database, "static", topology="single_node")
    ask(slots, SA, "a1")
    slots.tick()
    assert slots.state("a1") == "granted"
    ask(slots, SA, "a2")
    slots.tick()  # too soon after the last tick (tick_s is 60 s here)
    assert slots.state("a2") == "waiting"
    slots._last_tick -= 60
    slots.tick()
    assert slots.state("a2") == "granted"


def test_enterprise_mesh_holds_each_region_to_its_pool(database: Database) -> None:
    eu1, eu2, us = (
        Placement("e1", "-", "t1", "eu"),
        Placement("e2", "-", "t2", "eu"),
        Placement("u1", "-", "t3", "us"),
    )
    settings = SchedulingSettings(weights={"eu": 1, "us": 1})
    people = {p.developer: p for p in (eu1, eu2, us)}
    policy = SlotPolicy(4, 4, "enterprise_mesh", settings, people, ("eu", "us"))
    slots = SlotTable(database, policy, "me", False, lambda ids: {})
    ask(slots, eu1, "x1", "x2", "x3")
    ask(slots, eu2, "y1")
    # eu's pool is 2 of 4, split between its tribes (1 each): t1 and t2 get one each.
    assert slots.dispatch() == ["x1", "y1"]
    ask(slots, us, "z1")
    assert slots.dispatch() == ["z1"]
