"""The public surface of ``orchestra.accounting`` is what ``__all__`` says, no more, no less
(after httpx's ``tests/test_exported_members.py``): a rename that breaks it fails here."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

PACKAGES = ["orchestra.accounting", "orchestra.accounting.budgets", "orchestra.accounting.ledger"]


def _public(package: ModuleType) -> list[str]:
    """The names a package binds that are not private and not its own submodules."""
    return [
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not (isinstance(value, ModuleType) and value.__name__.startswith(package.__name__))
    ]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exactly_the_public_members(name: str) -> None:
    package = importlib.import_module(name)
    exported = package.__all__
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    assert sorted(exported) == sorted(_public(package))


def test_accounting_exports_every_name_callers_use() -> None:
    """What the gateway, engine and CLI import from ``orchestra.accounting`` stays there."""
    import orchestra.accounting as accounting

    for name in (
        "Accounting",
        "Attribution",
        "BudgetBook",
        "BudgetExceeded",
        "BudgetSpec",
        "Ledger",
        "LedgerEntry",
        "RateLimited",
        "Reservation",
        "StreamRecord",
        "UnknownPrice",
        "spend_report",
    ):
        assert name in accounting.__all__
