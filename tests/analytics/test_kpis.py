"""Golden fixtures for the other formulas, per unit, and who may see developer figures."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from orchestra.analytics import (
    Asker,
    NotVisible,
    kpi_report,
    link_all,
    parse_period,
    targets_for,
)
from orchestra.store import Database
from tests.analytics.fixtures import (
    T0,
    deployment_status,
    github,
    issue,
    ledger,
    pull_request,
    review,
    run_row,
)

ADMIN = Asker("root", frozenset({"admin"}))
NOVEMBER = parse_period("2026-11")
H = timedelta(hours=1)
USD = 1_000_000_000


def _run(
    db: Database, tmp: Path, run_id: str, coverage: float | None, findings: int | None
) -> None:
    folder = tmp / run_id
    folder.mkdir()
    report = {
        "commits": [],
        "coverage": {"percent": coverage} if coverage is not None else None,
        "security": {"ran": findings is not None, "findings": [{}] * (findings or 0)},
    }
    (folder / "report.json").write_text(json.dumps(report))
    with db.session() as session:
        session.add(
            run_row(
                run_id,
                T0 + 2 * H,
                branch=f"orchestra/{run_id}",
                report_path=str(folder / "report.md"),
            )
        )


@pytest.fixture
def recorded(db: Database, tmp_path: Path) -> Database:
    # alice: PR 1 from run r1 (opened T0, reviewed +2 h, merged +10 h, 400 lines),
    #        PR 2 by hand (opened T0, reviewed +4 h, merged +20 h, 600 lines)
    # carol: PR 3 from run r2 (opened T0, merged +30 h, 1000 lines); PR 4 still open
    github(
        db,
        "pull_request",
        pull_request(
            1,
            author="alice",
            merged=T0 + 10 * H,
            sha="1" * 40,
            branch="orchestra/r1",
            additions=300,
            deletions=100,
        ),
    )
    github(db, "pull_request_review", review(1, T0 + 2 * H, branch="orchestra/r1"))
    github(
        db,
        "pull_request",
        pull_request(2, author="alice", merged=T0 + 20 * H, sha="2" * 40, additions=600),
    )
    github(db, "pull_request_review", review(2, T0 + 4 * H))
    github(
        db,
        "pull_request",
        pull_request(
            3,
            author="carol",
            merged=T0 + 30 * H,
            sha="3" * 40,
            branch="orchestra/r2",
            additions=1000,
        ),
    )
    github(db, "pull_request", pull_request(4, author="carol"))
    github(db, "deployment_status", deployment_status(1, "1" * 40, "success", T0 + 12 * H))
    # a bug naming PR 1, a security issue, an unrelated bug
    github(db, "issues", issue(10, labels=["bug"], opened=T0 + 40 * H, body="since #1"))
    github(db, "issues", issue(11, labels=["Security"], opened=T0 + 41 * H))
    github(db, "issues", issue(12, labels=["bug"], opened=T0 + 42 * H, body="old"))
    _run(db, tmp_path, "r1", coverage=80.0, findings=2)
    _run(db, tmp_path, "r2", coverage=90.0, findings=None)
    ledger(
        db,
        [
            ("l1", "alice", "r1", 3 * USD, T0),
            ("l2", "alice", "r1", 1 * USD, T0 + H),
            ("l3", "carol", "r2", 2 * USD, T0),
            ("l4", "alice", None, 2 * USD, T0 + 2 * H),
            ("l5", "bob", None, 1 * USD, T0 - timedelta(days=40)),  # October: outside
        ],
    )
    link_all(db)
    return db


def test_org_figures(recorded: Database) -> None:
    f = kpi_report(recorded, ADMIN, period=NOVEMBER).figures
    weeks = 30 / 7
    assert f["velocity"].value == pytest.approx(3 / weeks)
    assert f["tasks_per_week"].value == pytest.approx(2 / weeks)
    assert f["cycle_time"].value == pytest.approx(20.0)  # median of 10, 20, 30
    assert f["review_time"].value == pytest.approx(3.0)  # median of 2, 4
    assert f["test_coverage"].value == pytest.approx(85.0)
    assert f["bug_density"].value == pytest.approx(1 / 2.0)  # 1 linked bug / 2000 lines
    assert "incident:github:acme/shop!10" in f["bug_density"].rows
    assert "incident:github:acme/shop!12" not in f["bug_density"].rows
    assert f["security_findings"].value == 3.0  # 2 bandit findings + 1 issue
    assert f["cost_per_run"].value == pytest.approx(3.0)  # (4 + 2) / 2
    assert f["cost_per_pr"].value == pytest.approx(3.0)  # PR 1: 4, PR 3: 2
    assert f["cost_per_feature"].value == pytest.approx(3.0)
    assert f["cost_per_developer_month"].value == pytest.approx(4.0)  # 8 / (alice, carol)
    assert f["cost_per_developer_month"].rows == (  # by start time (the index's order)
        "ledger:l1",
        "ledger:l3",
        "ledger:l2",
        "ledger:l4",
    )
    assert f["ai_adoption_developers"].value == pytest.approx(2 / 5)
    assert f["ai_adoption_changes"].value == pytest.approx(2 / 3)
    assert f["lead_time_for_changes"].value == pytest.approx(12.0)


def test_unit_and_developer_scopes(recorded: Database) -> None:
    squad = kpi_report(recorded, ADMIN, unit="payments", period=NOVEMBER).figures
    assert squad["velocity"].detail["merged"] == 2  # alice's PRs only
    assert squad["cycle_time"].value == pytest.approx(15.0)
    assert squad["cost_per_developer_month"].value == pytest.approx(6.0)  # alice: 6
    assert squad["ai_adoption_developers"].value == pytest.approx(1 / 2)  # alice, not bob
    carol = kpi_report(recorded, ADMIN, unit="carol", period=NOVEMBER).figures
    assert carol["cycle_time"].value == pytest.approx(30.0)
    assert carol["deployment_frequency"].value is None  # none of her changes deployed


def test_unknown_is_never_zero(db: Database) -> None:
    figures = kpi_report(db, ADMIN, period=NOVEMBER).figures
    assert all(
        f.value is None and f.unknown for k, f in figures.items() if k != "ai_adoption_developers"
    )
    assert figures["ai_adoption_developers"].value == 0.0  # 5 developers, none used it


ASKERS = [
    (Asker("alice"), True),  # herself
    (Asker("bob"), False),  # a squad mate
    (Asker("lead", frozenset({"lead"}), "checkout"), True),  # lead of the tribe above
    (Asker("lead", frozenset({"lead"}), "search"), False),  # lead of another squad
    (Asker("root", frozenset({"admin"})), True),
]


def test_developer_figures_are_for_the_developer_their_leads_and_admins(
    recorded: Database,
) -> None:
    for asker, allowed in ASKERS:
        if allowed:
            assert kpi_report(recorded, asker, unit="alice", period=NOVEMBER).figures
        else:
            with pytest.raises(NotVisible):
                kpi_report(recorded, asker, unit="alice", period=NOVEMBER)
        assert kpi_report(recorded, asker, unit="payments", period=NOVEMBER).figures


def test_stage_targets_compare_with_actuals(recorded: Database) -> None:
    report = kpi_report(recorded, ADMIN, period=NOVEMBER)
    assert report.stage == "small_team"  # 5 developers
    checks = {t.kpi: t for t in report.targets}
    assert checks["test_coverage"].met is True  # 85 >= 80
    assert checks["review_time"].met is True  # 3 h <= 24 h
    assert checks["ai_adoption_developers"].met is False  # 0.4 < 0.8
    assert checks["time_to_restore"].met is None  # unknown stays unknown
    assert targets_for("small_team", {"small_team": {"test_coverage": 95}})["test_coverage"] == 95
