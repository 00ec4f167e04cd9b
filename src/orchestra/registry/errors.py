"""The registry's errors: each says what was refused and what to do, and carries the HTTP
status an API answers with."""

from __future__ import annotations

from collections.abc import Iterable

from orchestra.config.names import close_matches
from orchestra.errors import RegistryError


def _did_you_mean(close: list[str], fallback: str) -> str:
    return f"did you mean {', '.join(close)}?" if close else fallback


class AgentUnknown(RegistryError):
    """No agent of that name was ever published."""

    status = 404

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(
            f"the registry has no agent named {name!r}",
            hint=_did_you_mean(
                close_matches(name, known), "run `orchestra registry list` to see every agent"
            ),
        )
        self.name = name


class VersionUnknown(RegistryError):
    """The agent exists but not in that version."""

    status = 404

    def __init__(self, name: str, version: str, versions: Iterable[int]) -> None:
        have = ", ".join(f"v{v}" for v in versions) or "none"
        super().__init__(
            f"agent {name!r} has no version {version}",
            hint=f"its versions are {have}; see `orchestra registry show {name}`",
        )


class InvalidDefinition(RegistryError):
    """A published definition failed the roster's checks; nothing was stored."""

    status = 422


class RegistryConflict(RegistryError):
    """The change does not fit the version's state (approving a yanked version ...)."""

    status = 409


class AgentNotInPool(RegistryError):
    """A developer asked for an agent their unit's pool does not allow."""

    status = 403


class UnknownUnit(RegistryError):
    """A pool names a unit (or a developer) the organisation does not have."""

    status = 404
