"""Every table module, imported so that ``Base.metadata`` knows all tables."""

from orchestra.store.tables import (
    engine,
    gateway,
    idempotency,
    identity,
    insight,
    insight2,
    knowledge,
    landing,
    ledger_rollups,
    org,
    registry,
    slots,
)

__all__ = [
    "engine",
    "gateway",
    "idempotency",
    "identity",
    "insight",
    "insight2",
    "knowledge",
    "landing",
    "ledger_rollups",
    "org",
    "registry",
    "slots",
]
