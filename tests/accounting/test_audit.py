from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from orchestra.accounting import AuditLog
from orchestra.accounting.audit import AuditAnchor, AuditChainBroken
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayAuditEntry, GatewayAuditHead, GatewayKey


def _log(database: Database, n: int = 5) -> AuditLog:
    log = AuditLog(database)
    for i in range(n):
        log.append("cli:root", "key.create", f"key_{i}", {"developer": f"dev{i}"})
    return log


def test_an_untouched_chain_verifies(database: Database) -> None:
    log = _log(database)
    result = log.verify()
    assert result.ok and result.checked == 5
    entries = log.list()
    assert [e.seq for e in entries] == [5, 4, 3, 2, 1]
    assert entries[0].prev_hash == entries[1].hash


def test_a_changed_entry_is_detected_and_named(database: Database) -> None:
    log = _log(database)
    with database.session() as s:
        s.execute(
            update(GatewayAuditEntry)
            .where(GatewayAuditEntry.seq == 3)
            .values(details='{"developer":"eve"}')
        )
    result = log.verify()
    assert not result.ok and result.first_bad_index == 3 and "changed" in result.reason


def test_a_removed_entry_is_detected_and_named(database: Database) -> None:
    log = _log(database)
    with database.session() as s:
        s.execute(delete(GatewayAuditEntry).where(GatewayAuditEntry.seq == 2))
    result = log.verify()
    assert not result.ok and result.first_bad_index == 2 and "missing" in result.reason


def test_removing_the_newest_entries_is_detected(database: Database) -> None:
    log = _log(database)
    with database.session() as s:
        s.execute(delete(GatewayAuditEntry).where(GatewayAuditEntry.seq >= 4))
    result = log.verify()
    assert not result.ok and result.first_bad_index == 4 and "removed" in result.reason


def test_a_rehashed_edit_still_breaks_the_link(database: Database) -> None:
    from orchestra.accounting.audit import entry_hash

    log = _log(database)
    victim = next(e for e in log.list() if e.seq == 2)
    forged = entry_hash(
        2,
        victim.at,
        "cli:eve",
        victim.action,
        victim.target,
        '{"developer":"dev1"}',
        victim.prev_hash,
    )
    with database.session() as s:
        s.execute(
            update(GatewayAuditEntry)
            .where(GatewayAuditEntry.seq == 2)
            .values(actor="cli:eve", entry_hash=forged)
        )
    result = log.verify()
    assert not result.ok and result.first_bad_index == 3


def test_concurrent_appends_from_separate_writers_keep_one_chain(database: Database) -> None:
    import threading

    from orchestra.accounting import AccountingStore

    stores = [AccountingStore(database) for _ in range(3)]
    logs = [AuditLog(store) for store in stores]

    def write(i: int) -> None:
        for n in range(10):
            logs[i].append(f"worker:{i}", "budget.set", f"b{n}", {"n": n})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        result = logs[0].verify()
        assert result.ok and result.checked == 30
    finally:
        for store in stores:
            store.close()


def _drop(database: Database, *, newest_from: int | None = None, head: bool = True) -> None:
    """What an attacker with write access does: remove the newest entries and/or the head."""
    with database.session() as s:
        if newest_from is not None:
            s.execute(delete(GatewayAuditEntry).where(GatewayAuditEntry.seq >= newest_from))
        if head:
            s.execute(delete(GatewayAuditHead))


def test_removing_the_newest_entry_together_with_the_head_is_detected(
    database: Database,
) -> None:
    log = _log(database)
    _drop(database, newest_from=5)
    result = log.verify()
    assert not result.ok and result.first_bad_index == 5
    assert "removed" in result.reason


def test_a_head_rewritten_to_match_the_truncated_chain_is_caught_by_the_checkpoint(
    database: Database,
) -> None:
    log = _log(database)
    fourth = next(e for e in log.list() if e.seq == 4)
    _drop(database, newest_from=5, head=False)
    with database.session() as s:
        s.execute(update(GatewayAuditHead).values(last_seq=4, last_hash=fourth.hash))
    result = log.verify()
    assert not result.ok and result.first_bad_index == 5
    assert "checkpoint" in result.reason and "records entry 5" in result.reason
    assert log.checkpoint.path.is_file()
    assert AuditAnchor.read(log.checkpoint.path).seq == 5


def test_the_checkpoint_follows_appends_of_every_process_and_never_goes_back(
    database: Database, tmp_path: Path
) -> None:
    first, second = AuditLog(database), AuditLog(database)
    assert first.checkpoint.path == second.checkpoint.path  # one file per database
    first.append("a", "x", "t")
    second.append("b", "y", "t")
    assert first.checkpoint.read() == AuditAnchor(2, second.list()[0].hash, second.list()[0].at)
    first.checkpoint.advance(AuditAnchor(1, "f" * 64))
    saved = first.checkpoint.read()
    assert saved is not None and saved.seq == 2


def test_an_exported_anchor_catches_a_wiped_log_whose_checkpoint_is_gone_too(
    database: Database, tmp_path: Path
) -> None:
    log = _log(database)
    anchor_file = tmp_path / "anchor.json"
    log.head().write(anchor_file)
    _drop(database, newest_from=1)
    log.checkpoint.path.unlink()
    assert log.verify().ok  # nothing left inside the database says anything is missing
    result = log.verify(anchor=("the anchor", AuditAnchor.read(anchor_file)))
    assert not result.ok and result.first_bad_index == 1
    assert "the anchor records entry 5" in result.reason


def test_an_anchor_from_another_chain_is_reported_as_a_rewrite(database: Database) -> None:
    log = _log(database, 3)
    forged = AuditAnchor(2, "e" * 64)
    result = log.verify(anchor=("the anchor", forged))
    assert not result.ok and result.first_bad_index == 2 and "rewritten" in result.reason
    good = log.verify(anchor=("the anchor", log.head()))
    assert good.ok and good.anchors == (f"the checkpoint {log.checkpoint.path}", "the anchor")


def test_an_entry_cannot_be_appended_once_the_head_is_gone(database: Database) -> None:
    log = _log(database, 3)
    _drop(database)
    with pytest.raises(AuditChainBroken) as err:
        log.append("cli:root", "key.create", "key_x")
    assert "head row is missing" in err.value.message and "reseal" in (err.value.hint or "")
    assert [e.seq for e in log.list()] == [3, 2, 1]


def test_an_action_in_the_transaction_is_undone_when_its_entry_cannot_be_written(
    database: Database,
) -> None:
    log = _log(database, 2)
    _drop(database)
    with pytest.raises(AuditChainBroken), log.transaction() as tx:
        tx.conn.execute(delete(GatewayAuditEntry).where(GatewayAuditEntry.seq == 1))
        tx.append("cli:root", "key.revoke", "key_1")
    assert [e.seq for e in log.list()] == [2, 1]  # the delete was rolled back with it


def test_reseal_rebuilds_a_lost_head_but_never_accepts_removed_entries(
    database: Database,
) -> None:
    log = _log(database, 3)
    assert log.reseal("cli:root") is None  # intact: nothing to do
    _drop(database)
    entry = log.reseal("cli:root")
    assert entry is not None and entry.seq == 4 and entry.action == "audit.reseal"
    assert log.verify().ok
    log.append("cli:root", "key.create", "key_y")  # appends work again
    _drop(database, newest_from=5)
    with pytest.raises(AuditChainBroken, match="cannot be resealed"):
        log.reseal("cli:root")


def test_orm_changes_in_the_transaction_commit_and_roll_back_with_the_entry(
    database: Database,
) -> None:
    log = _log(database, 1)
    with log.transaction() as tx:
        with tx.session() as session:
            session.add(GatewayKey(**_key_row("key_kept")))
        tx.append("cli:root", "key.create", "key_kept")
    _drop(database)
    with pytest.raises(AuditChainBroken), log.transaction() as tx:
        with tx.session() as session:
            session.add(GatewayKey(**_key_row("key_lost")))
        tx.append("cli:root", "key.create", "key_lost")
    with database.session() as session:
        assert session.scalars(select(GatewayKey.id)).all() == ["key_kept"]


def _key_row(key_id: str) -> dict[str, object]:
    return {
        "id": key_id,
        "prefix": "orc_x",
        "secret_hash": key_id.ljust(64, "0"),
        "developer": "alice",
        "team": None,
        "admin": False,
        "name": None,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
