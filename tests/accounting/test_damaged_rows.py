"""Reading the ledger survives a damaged row (issue 16 #8): a row whose text is not valid
UTF-8 (SQLite stores whatever bytes it is given) is reported and read with its bad bytes
escaped; the other rows, the spend report and the engine's run costs are unaffected."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from orchestra.accounting import (
    Accounting,
    Attribution,
    LedgerEntry,
    rebuild_rollups,
    spend_report,
)
from orchestra.engine.gateway_link import RunAccounting
from orchestra.providers import Usage
from orchestra.store import open_database

WHO = Attribution(developer="alice", squad="payments", key_id="key_a", run_id="run-1")


def test_a_row_with_invalid_utf8_is_reported_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'ledger.db'}")
    acc = Accounting(db, journal_dir=tmp_path / "journal", pepper=b"p")
    try:
        good = acc.ledger.append(
            LedgerEntry(WHO.for_call(step="plan"), cost_usd=Decimal("0.25"), usage=Usage(1, 1))
        )
        bad = acc.ledger.append(
            LedgerEntry(WHO.for_call(step="red"), cost_usd=Decimal("0.5"), usage=Usage(1, 1))
        )
        acc.store.fold_rollups()  # the rollups sum the rows as written
        with db.engine.begin() as conn:  # bytes no UTF-8 decoder accepts, stored as TEXT
            conn.execute(
                text(
                    "UPDATE gateway_ledger SET agent = CAST(X'ff6100fe' AS TEXT), "
                    "squad = CAST(X'ff6100fe' AS TEXT) WHERE id = :i"
                ),
                {"i": bad.id},
            )
        with caplog.at_level(logging.ERROR):
            entries = {e.id: e for e in acc.ledger.entries()}
        assert set(entries) == {good.id, bad.id}
        assert entries[good.id] == good
        assert entries[bad.id].attribution.agent == "\\xffa\x00\\xfe"
        assert entries[bad.id].cost_usd == Decimal("0.5")
        assert acc.ledger.unreadable_rows == 1
        assert any(bad.id in r.getMessage() and "agent" in r.getMessage() for r in caplog.records)
        # what reads the ledger reads it too
        assert RunAccounting(acc).costs_for_run("run-1") == {"plan": 0.25, "red": 0.5}
        report = spend_report(acc.store, by="agent", period="all")  # from the raw rows
        assert report.total_usd == Decimal("0.75")
        assert {r.group for r in report.rows} == {None, "\\xffa\x00\\xfe"}
        # By squad from the rollups, which summed the rows as written (the damage came later,
        # around the writer and the fold); summed again from the damaged rows, they read
        # leniently too.
        assert {r.group for r in spend_report(acc.store, by="team", period="all").rows} == {
            "payments"
        }
        with db.engine.begin() as conn:
            rebuild_rollups(conn)
        report = spend_report(acc.store, by="team", period="all")
        assert report.total_usd == Decimal("0.75")
        assert {r.group for r in report.rows} == {"payments", "\\xffa\x00\\xfe"}
    finally:
        acc.close()
        db.dispose()
