"""Every table module, imported so that ``Base.metadata`` knows all tables."""

from orchestra.store.tables import engine, gateway, knowledge, org, registry

__all__ = ["engine", "gateway", "knowledge", "org", "registry"]
