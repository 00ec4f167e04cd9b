"""The library refuses keys and budgets for names the organisation does not have."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from orchestra.accounting import Accounting, BudgetSpec, UnknownName
from orchestra.config import parse_config
from orchestra.store import Database

CONFIG = parse_config(
    "organisation:\n  units: [{name: payments, kind: squad}]\n"
    "  developers: [{name: alice, unit: payments}]\n",
    environ={},
)


def test_keys_and_budgets_name_who_exists(database: Database, tmp_path: Path) -> None:
    acc = Accounting(database, CONFIG, home=tmp_path)
    try:
        with pytest.raises(UnknownName, match="did you mean alice"):
            acc.keys.create("alise", "payments")
        with pytest.raises(UnknownName, match="did you mean payments"):
            acc.budgets.define(BudgetSpec("b", "team", "paymens", Decimal(5), "month", 80))
        assert acc.keys.list() == [] and acc.budgets.list() == []
        assert acc.audit.list() == []  # nothing half-applied, nothing audited
        acc.keys.create("alice", "payments")
        acc.budgets.define(BudgetSpec("b", "team", "*", Decimal(5), "month", 80))
    finally:
        acc.close()
