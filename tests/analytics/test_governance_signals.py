"""Maturity's governance signals from recorded data: policy compliance (the ledger's calls
and the audit log's policy decisions) and registry use (runs' agents against the registry,
squads with a pool); each with its rows, unknown without data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from orchestra.accounting import AuditLog
from orchestra.analytics import (
    Period,
    assess_maturity,
    maturity_rule_versions,
    principal_in,
    row_records,
)
from orchestra.org import load_org
from orchestra.store import Database
from orchestra.store.tables.engine import RunRow, StepRow
from orchestra.store.tables.registry import RegistryPool, RegistryVersion
from tests.analytics.fixtures import T0, ledger, sqlite_database

PERIOD = Period(T0 - timedelta(days=1), T0 + timedelta(days=1), "around T0")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = sqlite_database(tmp_path)
    yield database
    database.dispose()


def _audit(db: Database, *entries: tuple[str, str, str, dict[str, object]]) -> None:
    log = AuditLog(db, clock=lambda: T0)
    for actor, action, target, details in entries:
        log.append(actor, action, target, details)


def _signals(db: Database, unit: str | None = None) -> dict[str, dict[str, object]]:
    tree = load_org(db)
    assert tree is not None
    found = assess_maturity(db, principal_in(tree, "root"), unit=unit, period=PERIOD)
    assert found.rules == "2"
    return {
        e.signal.name: {
            "value": e.signal.value,
            "score": e.score,
            "rows": e.signal.rows,
            "total": e.signal.rows_total,
            "unknown": e.signal.unknown,
            "how": e.signal.how,
        }
        for d in found.dimensions.values()
        for e in d.evidence
    }


def test_the_default_rules_score_the_governance_signals() -> None:
    assert "2" in maturity_rule_versions()


def test_policy_compliance_counts_calls_let_through_and_audited_refusals(db: Database) -> None:
    ledger(db, [(f"a{i}", "alice", None, 10**9, T0) for i in range(5)])
    ledger(db, [(f"c{i}", "carol", None, 10**9, T0) for i in range(3)])
    _audit(
        db,
        ("key:k1", "policy.deny", "call_model Model::claude", {"principal": "developer:alice"}),
        ("developer:carol", "policy.deny", "start_run Unit::search", {}),
    )
    org = _signals(db)["policy_compliance"]
    # no permit of an action is audited: the action refusal is left out, not counted alone
    assert org["value"] == pytest.approx(8 / 9) and org["total"] == 9
    assert "actions not counted" in str(org["how"])
    assert org["score"] == 2  # rules 2: 0.889 is below 0.9 (3) and at least 0.75 (2)
    _audit(db, ("developer:bob", "policy.permit", "read_runs Organisation::acme", {}))
    org = _signals(db)["policy_compliance"]
    assert org["value"] == pytest.approx(9 / 11)  # (8 calls + 1 action) / (+ 2 refusals)
    rows = org["rows"]
    assert isinstance(rows, tuple)
    assert sum(r.startswith("audit:") for r in rows) == 3
    assert sum(r.startswith("ledger:") for r in rows) == 8
    records = {r.id: r for r in row_records(db, rows) if r.kind == "audit"}
    assert {r.fields["action"] for r in records.values()} == {"policy.deny", "policy.permit"}
    payments = _signals(db, "payments")["policy_compliance"]
    assert payments["value"] == pytest.approx(6 / 7)  # alice's 5 calls, bob's permit; 1 deny


def test_policy_compliance_is_unknown_without_decisions(db: Database) -> None:
    signal = _signals(db)["policy_compliance"]
    assert signal["value"] is None and "no model call" in str(signal["unknown"])
    assert signal["score"] is None


def _run(db: Database, run_id: str, agents: list[str]) -> None:
    with db.session() as session:
        session.add(
            RunRow(
                id=run_id,
                task="t",
                repo_path="/r",
                status="succeeded",
                created_at=T0,
                updated_at=T0,
                finished_at=T0,
            )
        )
        for n, agent in enumerate(agents):
            session.add(
                StepRow(
                    id=f"{run_id}/s{n}",
                    step=f"s{n}",
                    run_id=run_id,
                    phase="green",
                    agent=agent,
                    status="succeeded",
                    started_at=T0,
                )
            )


def _publish(db: Database, agent: str, state: str) -> None:
    with db.session() as session:
        session.add(
            RegistryVersion(
                agent=agent,
                version=1,
                state=state,
                definition="---\n---\n",
                digest="0" * 64,
                description="",
                category="engineering",
                tags="",
                publisher="root",
                published_at=T0,
            )
        )


def test_registry_use_is_the_share_of_runs_whose_agents_the_registry_approved(
    db: Database,
) -> None:
    _run(db, "r1", ["coder", "tester"])
    _run(db, "r2", ["coder", "rogue"])
    _run(db, "r3", [])  # ran no agent: not counted
    before = _signals(db)["registry_use"]
    assert before["value"] is None and "no approved agent" in str(before["unknown"])
    _publish(db, "coder", "approved")
    _publish(db, "tester", "deprecated")  # approved once, still served
    _publish(db, "rogue", "pending")
    use = _signals(db)["registry_use"]
    assert use["value"] == pytest.approx(1 / 2)
    assert use["rows"] == ("run:r1", "run:r2")


def test_registry_pools_cover_squads_by_inheritance(db: Database) -> None:
    assert _signals(db)["registry_pools"]["value"] == 0.0  # no pool: a measurement, 0
    with db.session() as session:
        session.add(
            RegistryPool(unit="checkout", entries='["*"]', updated_by="root", updated_at=T0)
        )
    pools = _signals(db)["registry_pools"]
    assert pools["value"] == pytest.approx(1 / 2)  # payments (under checkout), not search
    assert pools["rows"] == ("unit:payments", "unit:search")
    assert _signals(db, "search")["registry_pools"]["value"] == 0.0
    with db.session() as session:
        session.add(RegistryPool(unit="acme", entries='["*"]', updated_by="root", updated_at=T0))
    assert _signals(db)["registry_pools"]["value"] == 1.0
