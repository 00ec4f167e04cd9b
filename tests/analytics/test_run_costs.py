"""The runs a unit's figures read, each with its cost: only the period's runs and the
runs named (those linked to the unit's changes), summed in the database from the per-run
rollup, equal to the same question asked of the raw ledger rows."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from orchestra.accounting import LedgerMatch
from orchestra.analytics import Asker, kpi_report, parse_period
from orchestra.analytics.dataset import read_runs
from orchestra.store import Database
from tests.analytics.fixtures import T0, ledger, run_row

NOVEMBER = parse_period("2026-11")
DECEMBER = parse_period("2026-12")
ADMIN = Asker("root", frozenset({"admin"}))
PAYMENTS = [LedgerMatch(("squad",), "payments")]


def _runs(db: Database, finished: dict[str, datetime | None]) -> None:
    with db.session() as session:
        session.add_all(run_row(run_id, at) for run_id, at in finished.items())


@pytest.fixture
def runs(db: Database) -> Database:
    _runs(
        db,
        {
            "r1": T0,  # November, alice (payments) and carol (search)
            "r2": T0 + timedelta(days=3),  # November, carol only
            "r3": T0 - timedelta(days=20),  # October, alice
            "r4": T0 + timedelta(days=1),  # November, no ledger row
            "r5": None,  # still running, alice
            "r6": NOVEMBER.end,  # the first moment of December: outside November
        },
    )
    ledger(
        db,
        [
            ("l1", "alice", "r1", 3, T0),
            ("l2", "carol", "r1", 5, T0 - timedelta(days=40)),  # a row long before
            ("l3", "carol", "r2", 7, T0),
            ("l4", "alice", "r3", 11, T0 - timedelta(days=21)),
            ("l5", "alice", "r5", 13, T0),
            ("l6", "alice", None, 17, T0),
            ("l7", "alice", "r1", 19, T0 + timedelta(days=2)),
        ],
    )
    return db


def _read(db: Database, where: list[LedgerMatch], also: set[str], raw: bool) -> dict[str, int]:
    with db.engine.connect() as conn:
        rows = read_runs(conn, where, NOVEMBER.start, NOVEMBER.end, also, raw=raw)
    return {row.id: int(row.cost_nano) for row in rows}


@pytest.mark.parametrize("raw", [False, True])
def test_the_periods_runs_with_their_whole_cost(runs: Database, raw: bool) -> None:
    # The organisation: every run finished in the period, a run without rows at 0.
    assert _read(runs, [], set(), raw) == {"r1": 3 + 5 + 19, "r2": 7, "r4": 0}
    # Runs named besides (linked to the unit's changes), whenever they finished.
    assert _read(runs, [], {"r3", "r5", "nope"}, raw) == {
        "r1": 27,
        "r2": 7,
        "r3": 11,
        "r4": 0,
        "r5": 13,
    }


@pytest.mark.parametrize("raw", [False, True])
def test_a_units_runs_are_those_with_its_rows_and_their_cost_in_it(
    runs: Database, raw: bool
) -> None:
    assert _read(runs, PAYMENTS, set(), raw) == {"r1": 3 + 19}  # carol's 5 are search's
    assert _read(runs, PAYMENTS, {"r2", "r3"}, raw) == {"r1": 22, "r3": 11}


def test_many_named_runs_are_read_in_chunks(runs: Database) -> None:
    _runs(runs, {f"x{i:04d}": None for i in range(1200)})
    named = {f"x{i:04d}" for i in range(1200)}
    assert len(_read(runs, [], named, False)) == 1200 + 3


def test_a_unit_with_runs_only_before_the_period_did_no_task_in_it(runs: Database) -> None:
    # Only the period's runs are read now; that the unit has runs at all is asked apart:
    # a week without a finished run is 0 tasks, a unit that never ran one is unknown.
    figures = kpi_report(runs, ADMIN, unit="payments", period=DECEMBER).figures
    assert figures["tasks_per_week"].value == 0.0
    with runs.engine.begin() as conn:  # the runs' rows, folded into the rollup or not yet
        conn.exec_driver_sql("DELETE FROM ledger_rollup_run WHERE run_id <> ''")
        conn.exec_driver_sql("DELETE FROM gateway_ledger WHERE run_id <> ''")
    figures = kpi_report(runs, ADMIN, unit="payments", period=DECEMBER).figures
    assert figures["tasks_per_week"].value is None
