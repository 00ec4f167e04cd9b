from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text

from orchestra.accounting import Accounting, InvalidKey, KeyHolding, KeyNotFound, KeyStore
from orchestra.accounting.audit import AuditChainBroken
from orchestra.config import OrchestraConfig
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayAuditHead, GatewayKey
from tests.polling import eventually

from .conftest import FakeClock


def test_created_key_is_shown_once_and_stored_only_as_a_keyed_hash(
    accounting: Accounting, database: Database
) -> None:
    secret, record = accounting.keys.create("alice", "payments", name="laptop", actor="cli:root")
    assert secret.startswith("orc_") and len(secret) >= 40  # 256 random bits, url-safe base64
    assert record.prefix == secret[:12] and record.developer == "alice"
    with database.session() as session:
        row = session.scalars(select(GatewayKey)).one()
        stored = [str(v) for v in vars(row).values()]
    assert not any(secret in v for v in stored)
    assert row.secret_hash != secret and len(row.secret_hash) == 64
    other = KeyStore(database, pepper=b"another pepper")
    assert other.authenticate(secret) is None  # the hash depends on the server-side pepper
    found = accounting.keys.authenticate(secret)
    assert found is not None and found.id == record.id
    assert found.attribution().developer == "alice" and found.attribution().squad == "payments"
    assert found.attribution().key_id == record.id


def test_unknown_malformed_and_missing_keys_are_refused(accounting: Accounting) -> None:
    assert accounting.keys.authenticate("orc_nope") is None
    assert accounting.keys.authenticate("sk-ant-something") is None
    assert accounting.keys.authenticate("orc_" + "x" * 5000) is None
    with pytest.raises(InvalidKey) as err:
        accounting.keys.require(None)
    assert err.value.status == 401 and err.value.hint
    with pytest.raises(InvalidKey):
        accounting.keys.require("orc_nope")
    with pytest.raises(InvalidKey):
        accounting.keys.create("  ")


def test_revoke_takes_effect_at_once_in_this_process(accounting: Accounting) -> None:
    secret, record = accounting.keys.create("alice", "payments")
    assert accounting.keys.authenticate(secret) is not None  # now cached
    accounting.keys.revoke(record.id)
    assert accounting.keys.authenticate(secret) is None
    with pytest.raises(KeyNotFound):
        accounting.keys.revoke("key_missing")


def test_rotation_keeps_the_old_key_for_the_grace_period(
    accounting: Accounting, clock: FakeClock
) -> None:
    old_secret, old = accounting.keys.create("alice", "payments", admin=True)
    new_secret, new = accounting.keys.rotate(old.id, timedelta(hours=1))
    assert new.id != old.id and new.admin and new.developer == "alice" and new_secret != old_secret
    clock.advance(minutes=59)
    assert accounting.keys.authenticate(old_secret) is not None
    assert accounting.keys.get(old.id).status(clock()) == "rotating"
    clock.advance(minutes=2)
    assert accounting.keys.authenticate(old_secret) is None
    assert accounting.keys.authenticate(new_secret) is not None
    assert accounting.keys.get(old.id).replaced_by == new.id
    with pytest.raises(InvalidKey, match="expired"):
        accounting.keys.rotate(old.id)


def test_key_management_is_audited(accounting: Accounting) -> None:
    secret, record = accounting.keys.create("alice", "payments", actor="cli:ops")
    new_secret, _ = accounting.keys.rotate(record.id, timedelta(0), actor="cli:ops")
    accounting.keys.revoke(record.id, actor="key:admin")
    actions = [(e.action, e.target, e.actor) for e in reversed(accounting.audit.list())]
    assert actions == [
        ("key.create", record.id, "cli:ops"),
        ("key.rotate", record.id, "cli:ops"),
        ("key.revoke", record.id, "key:admin"),
    ]
    assert accounting.audit.verify().ok
    text_of_log = repr(accounting.audit.list())
    assert secret not in text_of_log and new_secret not in text_of_log  # ids and prefixes only


def test_attribution_resolves_the_org_units_above_the_team(
    database: Database, tmp_path: object
) -> None:
    with database.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO org_organisation (id, name, stage) VALUES (1, 'acme', NULL)")
        )
        for pos, (name, kind, parent) in enumerate(
            [
                ("platform", "division", None),
                ("money", "tribe", "platform"),
                ("payments", "squad", "money"),
            ]
        ):
            conn.execute(
                text(
                    "INSERT INTO org_units (name, kind, parent, description, position) "
                    "VALUES (:n, :k, :p, '', :pos)"
                ),
                {"n": name, "k": kind, "p": parent, "pos": pos},
            )
        conn.execute(
            text(
                "INSERT INTO org_developers (name, role, unit, email, position) "
                "VALUES ('bob', 'developer', 'payments', NULL, 0)"
            )
        )
    keys = KeyStore(database, pepper=b"p")
    secret, _ = keys.create("alice", "payments")
    a = keys.require(secret).attribution()
    assert (a.org, a.division, a.tribe, a.squad) == ("acme", "platform", "money", "payments")
    bob_secret, _ = keys.create("bob")  # no team given: the developer's unit from the org tree
    b = keys.require(bob_secret).attribution()
    assert (b.org, b.tribe, b.squad) == ("acme", "money", "payments")
    lone_secret, _ = keys.create("carol", "unknown-squad")
    c = keys.require(lone_secret).attribution()
    assert (c.org, c.division, c.squad) == ("acme", None, "unknown-squad")
    keys._store.close()


def test_key_changes_fail_without_their_audit_entry(
    accounting: Accounting, database: Database
) -> None:
    secret, record = accounting.keys.create("alice", "payments")
    with database.session() as session:
        session.execute(delete(GatewayAuditHead))
    with pytest.raises(AuditChainBroken) as err:
        accounting.keys.create("mallory", admin=True)
    assert err.value.hint and "orchestra audit" in err.value.hint
    with pytest.raises(AuditChainBroken):
        accounting.keys.revoke(record.id)
    with pytest.raises(AuditChainBroken):
        accounting.keys.rotate(record.id)
    with database.session() as session:
        rows = session.scalars(select(GatewayKey)).all()
        assert [(r.developer, r.revoked_at, r.replaced_by) for r in rows] == [("alice", None, None)]
    assert accounting.keys.authenticate(secret) is not None
    assert [e.action for e in accounting.audit.list()] == ["key.create"]


def test_a_revocation_by_another_process_takes_effect_at_once(
    database: Database, clock: FakeClock, tmp_path: Path
) -> None:
    """Two workers (or a worker and the CLI) on one database, with a long key cache."""
    workers = [
        Accounting(
            database,
            OrchestraConfig.model_validate({"gateway": {"key_cache_ttl_s": 3600}}),
            clock=clock,
            journal_dir=tmp_path / f"journal{i}",
            pepper=b"shared",
        )
        for i in range(2)
    ]
    gateway, cli = workers
    try:
        secret, record = cli.keys.create("alice", "payments")
        other_secret, _ = cli.keys.create("bob", "payments")
        assert gateway.keys.authenticate(secret) is not None  # cached for an hour
        assert gateway.keys.authenticate(other_secret) is not None
        cli.keys.revoke(record.id)
        assert eventually(lambda: gateway.keys.authenticate(secret) is None)
        assert gateway.keys.authenticate(other_secret) is not None
        rotated_secret, _ = cli.keys.rotate(_id_of(cli, "bob"), timedelta(0))
        assert eventually(lambda: gateway.keys.authenticate(other_secret) is None)
        assert gateway.keys.authenticate(rotated_secret) is not None
    finally:
        for acc in workers:
            acc.close()


def test_an_unchanged_key_is_served_from_the_cache(
    accounting: Accounting, database: Database
) -> None:
    secret, _ = accounting.keys.create("alice", "payments")
    assert accounting.keys.watch()
    assert accounting.keys.authenticate(secret) is not None
    with database.session() as session:  # behind the store's back: no audit, no counter
        session.execute(delete(GatewayKey))
    assert accounting.keys.authenticate(secret) is not None


def _id_of(acc: Accounting, developer: str) -> str:
    return next(k.id for k in acc.keys.list() if k.developer == developer)


def test_a_lost_change_listener_serves_nothing_stale_and_comes_back(database: Database) -> None:
    if database.engine.dialect.name != "postgresql":
        pytest.skip("the LISTEN/NOTIFY listener is PostgreSQL's; SQLite reads the counter")
    keys = KeyStore(database, pepper=b"p")
    try:
        assert keys.watch()
        before = keys.version()
        with database.engine.begin() as conn:
            killed = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            ).all()
        assert killed
        # Either still disconnected (every check is new: nothing served from a cache) or
        # already back, having moved the counter past everything read before.
        assert eventually(lambda: keys.version() != keys.version() or keys.version() > before)
        assert keys.watch() and keys.version() > before
    finally:
        keys.close()


def test_run_keys_are_the_engines_own_and_bound_to_their_run(accounting: Accounting) -> None:
    with pytest.raises(InvalidKey, match="reserved for pipeline runs"):
        accounting.keys.create("alice", name="run:someone-elses")
    secret, record = accounting.runs.open("alice", "payments", "run-1", 2.0)
    assert record.run_id == "run-1" and record.attribution().run_id == "run-1"
    assert record.attribution().for_call(run_id="run-2").run_id == "run-1"
    # A second open (a resume) revokes the first key; ending the run revokes the last.
    again, _ = accounting.runs.open("alice", "payments", "run-1", None)
    assert accounting.keys.authenticate(secret) is None
    assert accounting.keys.authenticate(again) is not None
    assert accounting.runs.end("run-1") == 1
    assert accounting.keys.authenticate(again) is None
    assert [s.cap_usd for s in accounting.budgets.list() if s.name == "run:run-1"] == [2]


def test_a_workers_run_key_revokes_only_its_own_the_fenced_and_unheld_keys(
    accounting: Accounting,
) -> None:
    """Workers holding parts of one run each keep a key: recovering a dead worker's part
    revokes the dead worker's key, not a live one's."""
    unheld, _ = accounting.runs.open("alice", None, "run-1", None)
    w1, first = accounting.runs.open("alice", None, "run-1", None, holding=KeyHolding("w1"))
    assert first.holder == "w1"
    assert accounting.keys.authenticate(unheld) is None  # held by no worker: replaced
    # w2 recovers w1's part (w1 is fenced); w3 then recovers another dead worker's part.
    w2, _ = accounting.runs.open("alice", None, "run-1", None, holding=KeyHolding("w2", ("w1",)))
    w3, _ = accounting.runs.open("alice", None, "run-1", None, holding=KeyHolding("w3", ("w0",)))
    assert accounting.keys.authenticate(w1) is None
    assert accounting.keys.authenticate(w2) is not None  # live w2 keeps its key
    assert accounting.keys.authenticate(w3) is not None
    # A worker opening the run again replaces its own earlier key only.
    w3_again, _ = accounting.runs.open("alice", None, "run-1", None, holding=KeyHolding("w3"))
    assert accounting.keys.authenticate(w3) is None
    assert accounting.keys.authenticate(w2) is not None
    assert accounting.keys.authenticate(w3_again) is not None
    # Ending the run revokes every key of it, whoever holds it.
    assert accounting.runs.end("run-1") == 2
    assert (
        accounting.keys.authenticate(w2) is None and accounting.keys.authenticate(w3_again) is None
    )
    # A key opened without a holding (one process) replaces every key of the run.
    a, _ = accounting.runs.open("alice", None, "run-2", None, holding=KeyHolding("w1"))
    b, _ = accounting.runs.open("alice", None, "run-2", None)
    assert accounting.keys.authenticate(a) is None and accounting.keys.authenticate(b) is not None
