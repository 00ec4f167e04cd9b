"""The agent registry: versioned agent definitions, their review and provenance, and the
pools that say which agents each unit of the organisation may use.

Open it with :class:`AgentRegistry` over a :class:`~orchestra.store.Database`; seed the
built-in agents with :func:`seed_builtins`; read and set pools with :class:`UnitPools`.
Every function returns plain dataclasses, so the CLI and the HTTP API only present them.
"""

from orchestra.registry.errors import (
    AgentNotInPool,
    AgentUnknown,
    InvalidDefinition,
    RegistryConflict,
    UnknownUnit,
    VersionUnknown,
)
from orchestra.registry.model import STATES, AgentSummary, AgentVersion, PoolView
from orchestra.registry.pools import PoolRoster, UnitPools, unit_chain
from orchestra.registry.registry import (
    TRANSITIONS,
    AgentRegistry,
    definition_of,
    parse_version,
    validate_definition,
)
from orchestra.registry.seam import (
    OFFICIAL_PUBLISHER,
    REGISTRY_ACTIONS,
    agent_resource,
    principal_for,
    unit_resource,
)
from orchestra.registry.search import SearchHit, search
from orchestra.registry.seed import SeedResult, seed_builtins

__all__ = [
    "OFFICIAL_PUBLISHER",
    "REGISTRY_ACTIONS",
    "STATES",
    "TRANSITIONS",
    "AgentNotInPool",
    "AgentRegistry",
    "AgentSummary",
    "AgentUnknown",
    "AgentVersion",
    "InvalidDefinition",
    "PoolRoster",
    "PoolView",
    "RegistryConflict",
    "SearchHit",
    "SeedResult",
    "UnitPools",
    "UnknownUnit",
    "VersionUnknown",
    "agent_resource",
    "definition_of",
    "parse_version",
    "principal_for",
    "search",
    "seed_builtins",
    "unit_chain",
    "unit_resource",
    "validate_definition",
]
