"""Every table module, imported so that ``Base.metadata`` knows all tables."""

from orchestra.store.tables import (
    engine,
    gateway,
    insight,
    insight2,
    knowledge,
    landing,
    org,
    registry,
)

__all__ = ["engine", "gateway", "insight", "insight2", "knowledge", "landing", "org", "registry"]
