"""The engine's view of the roster: who runs a step, with which prompt, tier and tools."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orchestra.errors import EngineError

UNIVERSAL_TOOLS = ("knowledge_search", "knowledge_store", "finish")


@dataclass(frozen=True)
class AgentProfile:
    """What the engine needs of a roster entry."""

    name: str
    prompt: str
    tier: str
    tools: tuple[str, ...]


class AgentSource(Protocol):
    """Looks agents up by name and picks implementers for files."""

    def get(self, name: str) -> AgentProfile: ...

    def pick_for_files(self, paths: Sequence[str]) -> str: ...


def _profile(definition: Any) -> AgentProfile:
    tools = tuple(dict.fromkeys([*definition.engine_tools, *UNIVERSAL_TOOLS]))
    return AgentProfile(
        name=definition.name,
        prompt=definition.prompt,
        tier=str(definition.tier),
        tools=tools,
    )


@dataclass
class RosterAgents:
    """:class:`AgentSource` over ``orchestra.roster`` (the 119 agent files)."""

    roster: Any

    @classmethod
    def load(cls, directory: Path | None = None) -> RosterAgents:
        """The built-in roster (or the agents in ``directory`` instead)."""
        from orchestra.roster import load_roster

        return cls(load_roster(directory))

    def get(self, name: str) -> AgentProfile:
        try:
            definition = self.roster.get(name)
        except (KeyError, LookupError) as exc:
            raise EngineError(
                f"the roster has no agent {name!r}", hint="run `orchestra agents list`"
            ) from exc
        if definition is None:
            raise EngineError(
                f"the roster has no agent {name!r}", hint="run `orchestra agents list`"
            )
        return _profile(definition)

    def pick_for_files(self, paths: Sequence[str]) -> str:
        picked = self.roster.pick_for_files(list(paths))
        if isinstance(picked, (list, tuple)):
            picked = picked[0] if picked else None
        if picked is None:
            return "python-developer"
        return str(getattr(picked, "name", picked))
