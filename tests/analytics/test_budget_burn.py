"""Early warnings on budgets (burn rate against each cap) and on the engine's own run and
step durations: golden figures worked out by hand, a real trend against one bad day, and
the alert machinery (one alert per budget, de-duplicated, escalated once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestra.analytics import (
    BudgetBurn,
    Finding,
    acknowledge,
    alert_history,
    budget_burn,
    check_warnings,
    record_findings,
    resolve_scope,
)
from orchestra.analytics.escalation import Message
from orchestra.org import load_org
from orchestra.store import Database
from orchestra.store.tables.engine import RunRow, StepRow
from orchestra.store.tables.gateway import GatewayBudget
from tests.analytics.fixtures import T0, budget, ledger

NOW = T0 + timedelta(days=14)  # Monday 2026-11-16 09:00 UTC; the look-back is Nov 2-15
USD = 1_000_000_000


def _daily_spend(db: Database, developer: str, dollars: list[float], skip: int = 0) -> None:
    """One call a day at noon, the first ``skip`` days after Nov 2 (the look-back's first
    full day)."""
    first = T0.replace(hour=12) + timedelta(days=skip)
    ledger(
        db,
        [
            (f"{developer}-{i}", developer, None, int(d * USD), first + timedelta(days=i))
            for i, d in enumerate(dollars)
        ],
    )


def _burns(db: Database, unit: str | None) -> dict[str, BudgetBurn]:
    tree = load_org(db)
    assert tree is not None
    with db.session() as session:
        found = budget_burn(session, resolve_scope(tree, unit), now=NOW)
    return {b.budget: b for b in found}


def test_a_steady_burn_projects_the_day_the_cap_is_reached(db: Database) -> None:
    # $4 a day for 14 days: $56 of $100 spent, $44 left at $4/day = 11 days from now.
    _daily_spend(db, "alice", [4.0] * 14)
    budget(db, "alice-month", "developer", "alice", 100)
    burn = _burns(db, "alice")["alice-month"]
    assert burn.spent_usd == pytest.approx(56.0)
    assert burn.used == pytest.approx(0.56)
    assert burn.trend == "steady"
    assert burn.rate_usd_per_day == pytest.approx(4.0)
    assert burn.exhausts_at == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert burn.window_end == datetime(2026, 12, 1, tzinfo=UTC)
    # 14.625 days to the window's end at $4/day on top of the $56
    assert burn.projected_usd == pytest.approx(114.5)


def test_a_rising_burn_is_projected_along_its_trend(db: Database) -> None:
    # $1, $2, ... $14 a day: $105 of $300. The last week's mean ($11/day) would reach the
    # cap on Dec 3, after the window; the trend (Sen's slope $1/day, today $15) on
    # Nov 26 05:24: 0.625 x $15 today, then $16 + ... + $24 (Nov 17-25), then 0.225 of $25.
    _daily_spend(db, "bob", [float(d) for d in range(1, 15)])
    budget(db, "payments-month", "team", "payments", 300)
    burn = _burns(db, "payments")["payments-month"]
    assert burn.trend == "rising"
    assert burn.mann_kendall is not None and burn.mann_kendall["p_value"] < 0.05
    assert burn.rate_usd_per_day == pytest.approx(15.0)
    expected = datetime(2026, 11, 26, 5, 24, tzinfo=UTC)
    assert burn.exhausts_at is not None
    assert abs(burn.exhausts_at - expected) < timedelta(seconds=1)


def test_a_falling_burn_is_projected_at_the_last_weeks_mean(db: Database) -> None:
    # $14, $13, ... $1 a day: falling; the last seven days' mean ($4/day) leaves $195 of
    # $300 for 48.75 days, past the window: no exhaustion, no finding.
    _daily_spend(db, "bob", [float(d) for d in range(14, 0, -1)])
    budget(db, "payments-month", "team", "payments", 300)
    burn = _burns(db, "payments")["payments-month"]
    assert (burn.trend, burn.rate_usd_per_day, burn.exhausts_at) == ("falling", 4.0, None)
    assert burn.projected_usd == pytest.approx(105 + 4 * 14.625)
    assert check_warnings(db, unit="payments", now=NOW) == []


def test_too_little_data_is_unknown_and_no_warning_unless_the_cap_is_nearly_spent(
    db: Database,
) -> None:
    _daily_spend(db, "carol", [1.0, 1.0], skip=12)  # calls on the last two days only
    budget(db, "carol-month", "developer", "carol", 100)
    burn = _burns(db, "carol")["carol-month"]
    assert burn.rate_usd_per_day is None and burn.exhausts_at is None
    assert "fewer than 3 full days" in (burn.why_unknown or "")
    assert check_warnings(db, unit="carol", now=NOW) == []
    budget(db, "carol-small", "developer", "carol", 2.1)  # $2 of $2.10: 95 %
    alerts = check_warnings(db, unit="carol", now=NOW)
    assert [(a.indicator, a.severity) for a in alerts] == [("budget_burn_rate", "critical")]
    assert "burn rate unknown" in alerts[0].summary and "(95%)" in alerts[0].summary


def test_each_budget_has_its_own_alert_de_duplicated_and_escalated_once(db: Database) -> None:
    _daily_spend(db, "alice", [4.0] * 14)
    budget(db, "alice-month", "developer", "alice", 100)  # reached Nov 27, before Dec 1
    budget(db, "alice-week", "developer", "alice", 25, "week")  # 6.25 days: Nov 22 15:00
    budget(db, "alice-roomy", "developer", "alice", 30, "week")  # 7.5 days: after Nov 23
    sent: list[tuple[str, Message]] = []

    def send(unit: str, message: Message) -> list[str]:
        sent.append((unit, message))
        return ["webhook ok"]

    alerts = check_warnings(db, unit="alice", now=NOW, send=send)
    assert sorted((a.indicator, a.severity) for a in alerts) == [
        ("budget_burn_rate", "warning"),
        ("budget_burn_rate", "warning"),
    ]
    summaries = sorted(a.summary for a in alerts)
    assert "budget alice-month" in summaries[0] and "2026-11-27 09:00 UTC" in summaries[0]
    assert "budget alice-week" in summaries[1] and "2026-11-22 15:00 UTC" in summaries[1]
    assert len(sent) == 2
    again = check_warnings(db, unit="alice", now=NOW + timedelta(minutes=5), send=send)
    assert sorted(a.id for a in again) == sorted(a.id for a in alerts)
    assert len(sent) == 2  # de-duplicated: not paged again

    month = next(a for a in alerts if "alice-month" in a.summary)
    week = next(a for a in alerts if "alice-week" in a.summary)
    acknowledge(db, month.id, "lead")
    with db.session() as session:  # the weekly budget is raised: no longer a finding
        session.get(GatewayBudget, "bud_alice-week").cap_nano = 100 * USD  # type: ignore[union-attr]
    later = check_warnings(db, unit="alice", now=NOW + timedelta(minutes=10), send=send)
    assert [(a.id, a.state) for a in later] == [(month.id, "acknowledged")]
    history = alert_history(db, week.id)
    assert (history[-1]["event"], history[-1]["actor"]) == ("resolved", "check")
    assert len(sent) == 2


def test_org_budgets_belong_to_the_organisation_check_and_90_percent_is_critical(
    db: Database,
) -> None:
    _daily_spend(db, "alice", [2.0] * 14)
    _daily_spend(db, "carol", [1.3] * 14)
    budget(db, "everyone", "org", "*", 45)  # $46.20 of $45: over the cap
    budget(db, "team", "team", "payments", 1000)  # a team's: not the organisation check's
    burns = _burns(db, None)
    assert list(burns) == ["everyone"]
    assert burns["everyone"].spent_usd == pytest.approx(46.2)
    alerts = check_warnings(db, now=NOW)
    assert [(a.unit, a.severity) for a in alerts] == [("acme", "critical")]
    assert "the cap is reached" in alerts[0].summary


def _run(db: Database, run_id: str, status: str, created: datetime, minutes: float) -> None:
    with db.session() as session:
        session.add(
            RunRow(
                id=run_id,
                task="t",
                pipeline="test-first",
                repo_path="/r",
                status=status,
                created_at=created,
                updated_at=created,
                finished_at=created + timedelta(minutes=minutes) if status != "running" else None,
            )
        )


def test_an_active_run_budget_is_watched_in_its_developer_check(db: Database) -> None:
    _run(db, "r-live", "running", NOW - timedelta(hours=1), 0)
    _run(db, "r-done", "succeeded", NOW - timedelta(hours=3), 30)
    ledger(
        db,
        [
            ("live-1", "alice", "r-live", int(4.8 * USD), NOW - timedelta(minutes=30)),
            ("done-1", "alice", "r-done", int(4.9 * USD), NOW - timedelta(hours=3)),
        ],
    )
    budget(db, "run:r-live", "run", "r-live", 5, "none")
    budget(db, "run:r-done", "run", "r-done", 5, "none")
    burns = _burns(db, "alice")
    assert list(burns) == ["run:r-live"]  # a finished run's budget is no longer spent
    assert (burns["run:r-live"].why_unknown or "").startswith("a run budget has no window")
    alerts = check_warnings(db, unit="alice", now=NOW)
    assert [(a.indicator, a.severity) for a in alerts] == [("budget_burn_rate", "critical")]
    assert "for the run" in alerts[0].summary
    assert check_warnings(db, unit="bob", now=NOW) == []


def _runs_over_days(db: Database, minutes: list[float], steps: list[float]) -> None:
    for day, (run_minutes, step_seconds) in enumerate(zip(minutes, steps, strict=True)):
        created = NOW - timedelta(days=len(minutes) - day, hours=2)
        run_id = f"run-{day}"
        _run(db, run_id, "succeeded", created, run_minutes)
        with db.session() as session:
            for n in range(3):
                began = created + timedelta(minutes=n)
                session.add(
                    StepRow(
                        id=f"{run_id}/s{n}",
                        step=f"s{n}",
                        run_id=run_id,
                        phase="green",
                        agent="coder",
                        status="ok",
                        started_at=began,
                        finished_at=began + timedelta(seconds=step_seconds),
                    )
                )
    _run(db, "failed-slow", "failed", NOW - timedelta(days=1, hours=5), 900)  # not counted


def test_rising_run_and_step_durations_warn_and_past_the_threshold_is_critical(
    db: Database,
) -> None:
    _runs_over_days(
        db,
        minutes=[30, 32, 31, 35, 40, 42, 45, 50, 55, 130],
        steps=[60, 62, 65, 70, 71, 75, 80, 90, 95, 100],
    )
    alerts = {a.indicator: a for a in check_warnings(db, now=NOW)}
    assert alerts["run_duration"].severity == "critical"  # last day 130 min > 120
    assert alerts["step_duration"].severity == "warning"  # rising, below 900 s
    assert "Mann-Kendall" in alerts["run_duration"].summary


def test_one_slow_day_of_runs_is_not_a_trend(db: Database) -> None:
    _runs_over_days(
        db,
        minutes=[30, 31, 29, 30, 32, 30, 29, 31, 30, 400],
        steps=[60, 61, 59, 60, 62, 60, 59, 61, 60, 3000],
    )
    indicators = {a.indicator for a in check_warnings(db, now=NOW)}
    assert not indicators & {"run_duration", "step_duration"}


def test_a_long_budget_name_still_makes_one_alert(db: Database) -> None:
    long = Finding("payments", "budget_burn_rate", "warning", 0.5, 0.9, "s", subject="b" * 250)
    other = Finding("payments", "budget_burn_rate", "warning", 0.5, 0.9, "s", subject="b" * 249)
    first = record_findings(db, "payments", [long, other], now=NOW)
    again = record_findings(db, "payments", [long, other], now=NOW + timedelta(minutes=1))
    assert len(set(first)) == 2 and again == first
