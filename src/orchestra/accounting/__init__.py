"""Accounting for the model gateway: keys, prices, budgets, rate limits, ledger, audit, secrets.

Everything here is synchronous SQLAlchemy over :class:`orchestra.store.Database`, with
``a``-prefixed async twins (``areserve``, ``asettle``, ``aappend``, ``afinish``) for the
methods on the request path: they wait for the group-committed transaction without
blocking the event loop. :class:`Accounting` builds every component over one database.
"""

from orchestra.accounting.alerts import BudgetAlert, BudgetAlerts
from orchestra.accounting.attribution import Attribution, OrgPath
from orchestra.accounting.audit import AuditEntry, AuditLog, VerifyResult
from orchestra.accounting.budgets import (
    BudgetBook,
    BudgetSpec,
    BudgetStatus,
    Reservation,
    period_bounds,
)
from orchestra.accounting.errors import (
    AccountingError,
    BudgetExceeded,
    BudgetNotFound,
    InvalidBudget,
    InvalidKey,
    KeyNotFound,
    RateLimited,
    RunOwnedElsewhere,
    SecretError,
    UnknownDimension,
    UnknownName,
    UnknownPrice,
)
from orchestra.accounting.facade import Accounting
from orchestra.accounting.keys import KeyHolding, KeyRecord, KeyStore
from orchestra.accounting.ledger import OUTCOMES, Ledger, LedgerEntry, StreamRecord
from orchestra.accounting.ledger_totals import (
    DIMENSIONS,
    LedgerMatch,
    Totals,
    ledger_totals,
)
from orchestra.accounting.limits import RateLimit, RateLimiter, RateLimitPolicy
from orchestra.accounting.org_changes import sync_org_audited
from orchestra.accounting.pricing import BUILTIN_PRICES, Price, PriceTable
from orchestra.accounting.rollups import rebuild_rollups
from orchestra.accounting.runs import RunGrants, run_budget_name
from orchestra.accounting.secrets import SecretBox, SecretStore
from orchestra.accounting.spend import (
    InvalidSpendQuery,
    SpendReport,
    SpendRow,
    parse_period,
    spend_report,
)
from orchestra.accounting.store import AccountingStore

__all__ = [
    "BUILTIN_PRICES",
    "DIMENSIONS",
    "OUTCOMES",
    "Accounting",
    "AccountingError",
    "AccountingStore",
    "Attribution",
    "AuditEntry",
    "AuditLog",
    "BudgetAlert",
    "BudgetAlerts",
    "BudgetBook",
    "BudgetExceeded",
    "BudgetNotFound",
    "BudgetSpec",
    "BudgetStatus",
    "InvalidBudget",
    "InvalidKey",
    "InvalidSpendQuery",
    "KeyHolding",
    "KeyNotFound",
    "KeyRecord",
    "KeyStore",
    "Ledger",
    "LedgerEntry",
    "LedgerMatch",
    "OrgPath",
    "Price",
    "PriceTable",
    "RateLimit",
    "RateLimitPolicy",
    "RateLimited",
    "RateLimiter",
    "Reservation",
    "RunGrants",
    "RunOwnedElsewhere",
    "SecretBox",
    "SecretError",
    "SecretStore",
    "SpendReport",
    "SpendRow",
    "StreamRecord",
    "Totals",
    "UnknownDimension",
    "UnknownName",
    "UnknownPrice",
    "VerifyResult",
    "ledger_totals",
    "parse_period",
    "period_bounds",
    "rebuild_rollups",
    "run_budget_name",
    "spend_report",
    "sync_org_audited",
]
