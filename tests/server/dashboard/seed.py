"""A seeded server for the dashboard's tests: an organisation (one squad's name is HTML),
changes, deployments, incidents and ledger rows over the last weeks, two alerts, and a
gateway key per developer, and a recorded experiment (see ``experiment_seed``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from orchestra.analytics import (
    Asker,
    Finding,
    answer_survey,
    close_survey_round,
    link_all,
    open_survey_round,
    parse_period,
    plan_transition,
    record_findings,
)
from orchestra.config import OrchestraConfig
from orchestra.gateway import GatewayApp
from orchestra.org import Developer, OrgUnit, build_org_tree, sync_org
from orchestra.server import build_app
from orchestra.store import Database
from tests.analytics.fixtures import (
    budget,
    deployment_status,
    github,
    issue,
    ledger,
    pull_request,
)
from tests.server.dashboard.experiment_seed import seed_experiments

EVIL = "<script>window.__pwned=1</script>"
"""A squad's name as stored (the configuration would refuse it; another source of the
organisation, or an old database, need not): the pages must show it as text, never run it."""

EVIL_DEVELOPER = "<img src=x onerror=window.__pwned=2>"
"""A developer name in the ledger (the spend page's rows)."""

ORG: dict[str, Any] = {
    "name": "acme",
    "units": [
        {"name": "retail", "kind": "division"},
        {"name": "checkout", "kind": "tribe", "parent": "retail"},
        {"name": "payments", "kind": "squad", "parent": "checkout"},
        {"name": "search", "kind": "squad", "parent": "retail"},
    ],
    "developers": [
        {"name": "root", "role": "admin"},
        {"name": "lead", "role": "lead", "unit": "checkout"},
        {"name": "alice", "unit": "payments", "email": "alice@acme.test"},
        {"name": "bob", "unit": "payments"},
        {"name": "carol", "unit": "search"},
    ],
}


@dataclass
class Seeded:
    """The application and a gateway key per developer."""

    app: GatewayApp
    keys: dict[str, str]
    database: Database
    alerts: list[str]


def _insight(db: Database, now: datetime) -> None:
    for week in range(6):
        at = now - timedelta(days=7 * week + 2)
        for n in range(2):
            number = week * 10 + n + 1
            sha = f"{number:040x}"
            author = "alice" if n == 0 else "bob"
            github(
                db,
                "pull_request",
                pull_request(
                    number, author=author, opened=at - timedelta(hours=30), merged=at, sha=sha
                ),
            )
            state = "failure" if number == 12 else "success"
            github(
                db,
                "deployment_status",
                deployment_status(number, sha, state, at + timedelta(hours=2)),
            )
    github(
        db,
        "issues",
        issue(
            99,
            labels=["incident"],
            opened=now - timedelta(days=9),
            closed=now - timedelta(days=8),
            title="Checkout down <img src=x onerror=alert(1)>",
        ),
    )
    ledger(
        db,
        [
            (
                f"l{i}",
                ("alice", "carol", EVIL_DEVELOPER)[i % 3],
                None,
                2_000_000_000 + i,
                now - timedelta(days=i % 20),
            )
            for i in range(30)
        ],
    )
    link_all(db)


def _alerts(db: Database, now: datetime) -> list[str]:
    findings = [
        Finding("checkout", "cycle_time", "warning", 40.0, 24.0, "Cycle time rose to 40 h"),
        Finding("checkout", "cost_anomaly", "critical", 9.0, 3.0, "Spend 3x the usual"),
    ]
    return record_findings(db, "checkout", findings, now=now)


SURVEY_ANSWERS = {
    "root": (5, 4, 10),
    "lead": (4, 4, 9),
    "alice": (4, 3, 8),
    "bob": (3, 4, 6),
    "carol": (5, 5, 10),
    "dave": (4, 4, 9),
}
"""The closed round's answers: six in the organisation (shown), five in retail (hidden:
the rest of the organisation would be one), three in checkout (too few)."""


def _surveys_and_plans(db: Database, now: datetime) -> None:
    admin = Asker("root", frozenset({"admin"}), None)
    open_survey_round(db, admin, "2026-q3", "Q3 survey", now=now - timedelta(days=40))
    for name, (satisfaction, quality, recommend) in SURVEY_ANSWERS.items():
        answer_survey(
            db, name, "2026-q3", satisfaction=satisfaction, quality=quality, recommend=recommend
        )
    close_survey_round(db, admin, "2026-q3")
    open_survey_round(db, admin, "2026-q4", "Q4 survey <b>now</b>", now=now - timedelta(days=1))
    for days in (14, 7):  # two recorded evaluations of the organisation's plan
        plan_transition(
            db,
            admin,
            target="medium",
            period=parse_period("last-90d"),
            record=True,
            now=now - timedelta(days=days),
        )


def seeded_app(tmp_path: Path) -> Iterator[Seeded]:
    """The combined app over a fresh SQLite database with the data above."""
    files = seed_experiments(tmp_path)
    config = OrchestraConfig.model_validate(
        {"organisation": ORG, "rollout": {"experiment_files": files}}
    )
    config_path = tmp_path / "orchestra.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True)))
    app = build_app(
        config, database_url=f"sqlite:///{tmp_path / 'orchestra.db'}", config_path=config_path
    )
    accounting = app.gateway.accountant.accounting  # type: ignore[attr-defined]
    db = accounting.store.db
    tree = build_org_tree(config.organisation)
    evil = OrgUnit(EVIL, "squad", "retail")
    dave = Developer("dave", "developer", EVIL)
    sync_org(db, replace(tree, units=(*tree.units, evil), developers=(*tree.developers, dave)))
    now = datetime.now(UTC)
    _insight(db, now)
    budget(db, "acme-month", "org", "*", 100)  # the alerts page's budget burn
    alert_ids = _alerts(db, now)
    _surveys_and_plans(db, now)
    keys = {}
    for dev in ORG["developers"]:
        secret, _ = accounting.keys.create(
            dev["name"], None, admin=dev["name"] == "root", actor="test"
        )
        keys[dev["name"]] = secret
    try:
        yield Seeded(app, keys, db, alert_ids)
    finally:
        accounting.close()
