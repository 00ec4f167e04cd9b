"""Every table module, imported so that ``Base.metadata`` knows all tables."""

from orchestra.store.tables import engine, gateway, insight, knowledge, org, registry

__all__ = ["engine", "gateway", "insight", "knowledge", "org", "registry"]
