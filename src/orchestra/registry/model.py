"""The registry's values: plain frozen dataclasses, easy to print, serialise and serve."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STATES = ("pending", "approved", "rejected", "deprecated", "yanked")
"""Where a version can be. Only approved and deprecated versions are served."""
SERVED_STATES = frozenset({"approved", "deprecated"})


@dataclass(frozen=True)
class AgentVersion:
    """One published version of an agent and its provenance."""

    agent: str
    version: int
    state: str
    digest: str
    description: str
    category: str
    tags: tuple[str, ...]
    publisher: str
    published_at: datetime
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    changed_by: str | None = None
    changed_at: datetime | None = None
    note: str = ""
    definition: str = field(default="", repr=False)
    """The agent file as published."""

    @property
    def label(self) -> str:
        """``name@vN``."""
        return f"{self.agent}@v{self.version}"

    def to_dict(self, *, with_definition: bool = False) -> dict[str, Any]:
        """Plain data for ``--json`` and the API (the definition only when asked)."""
        data: dict[str, Any] = {
            "agent": self.agent,
            "version": self.version,
            "state": self.state,
            "digest": self.digest,
            "description": self.description,
            "category": self.category,
            "tags": list(self.tags),
            "publisher": self.publisher,
            "published_at": self.published_at.isoformat(),
            "reviewed_by": self.reviewed_by,
            "reviewed_at": self.reviewed_at.isoformat() if self.reviewed_at else None,
            "changed_by": self.changed_by,
            "changed_at": self.changed_at.isoformat() if self.changed_at else None,
            "note": self.note,
        }
        if with_definition:
            data["definition"] = self.definition
        return data


@dataclass(frozen=True)
class AgentSummary:
    """An agent as listings show it: its served version (if any) and its newest one."""

    agent: str
    served: AgentVersion | None
    """The newest approved or deprecated version; ``None`` when nothing is servable."""
    latest: AgentVersion

    @property
    def warning(self) -> str | None:
        """Set when the served version is deprecated."""
        if self.served is not None and self.served.state == "deprecated":
            note = f": {self.served.note}" if self.served.note else ""
            return f"{self.served.label} is deprecated{note}"
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and the API."""
        return {
            "agent": self.agent,
            "served": self.served.to_dict() if self.served else None,
            "latest": self.latest.to_dict(),
            "warning": self.warning,
        }


@dataclass(frozen=True)
class PoolView:
    """The agents a unit may use and where that comes from."""

    unit: str
    """The unit (or the organisation's name for the top)."""
    chain: tuple[str, ...]
    """The unit and its ancestors, the unit first, the organisation last."""
    own: tuple[str, ...] | None
    """The unit's own entries; ``None`` when it only inherits."""
    restricted_by: tuple[str, ...]
    """Units in :attr:`chain` that have a pool of their own (they narrow the pool)."""
    agents: tuple[str, ...]
    """Agents the unit may use: served and allowed by every pool in the chain."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and the API."""
        return {
            "unit": self.unit,
            "chain": list(self.chain),
            "own": list(self.own) if self.own is not None else None,
            "restricted_by": list(self.restricted_by),
            "agents": list(self.agents),
        }
