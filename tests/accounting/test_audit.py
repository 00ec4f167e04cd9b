from __future__ import annotations

from sqlalchemy import delete, update

from orchestra.accounting import AuditLog
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayAuditEntry


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
