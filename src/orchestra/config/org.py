"""Configuration section ``organisation``: the organisation tree and its stage.

The tree is a flat list of units, each naming its ``kind`` and its ``parent``, so that
unknown parents and cycles can be reported with the line they are on (a nested YAML
tree could not even express them). Levels are optional: a squad may hang directly off
the organisation, and a solo developer needs no units at all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestra.config.models import StrictModel

UnitKind = Literal["division", "tribe", "squad", "guild"]
RoleName = Literal["admin", "lead", "developer", "viewer"]
StageName = Literal["individual", "small_team", "medium", "large", "enterprise"]

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
"""Unit and developer names: lowercase, digits, ``.``, ``_``, ``-``; used as ids elsewhere."""


class UnitConfig(StrictModel):
    """One unit of the organisation: a division, tribe, squad or guild."""

    name: str = Field(pattern=NAME_PATTERN)
    kind: UnitKind
    parent: str | None = None
    """Name of the enclosing unit; ``None`` means directly under the organisation.
    Guilds cut across the tree and take no parent."""
    description: str = ""
    regions: list[str] = Field(default_factory=list)
    """Regions whose models this unit's developers may use (inherited down the tree);
    empty: no restriction of its own."""


class DeveloperConfig(StrictModel):
    """A person who runs agents."""

    name: str = Field(pattern=NAME_PATTERN)
    unit: str | None = None
    """The squad (or tribe/division when there are no squads) they belong to."""
    role: RoleName = "developer"
    guilds: list[str] = Field(default_factory=list)
    """Names of guild units they are a member of."""
    email: str | None = None
    regions: list[str] = Field(default_factory=list)
    """Regions whose models this developer may use; empty: those of their unit."""


def _solo_developer() -> list[DeveloperConfig]:
    return [DeveloperConfig(name="developer", role="admin")]


class OrganisationSection(StrictModel):
    """The organisation tree and its growth stage (owned by the organisation model)."""

    name: str = Field(default="my-organisation", pattern=NAME_PATTERN)
    stage: StageName | None = None
    """Pin the stage instead of deriving it from the headcount (a warning is shown when
    the headcount disagrees)."""
    units: list[UnitConfig] = Field(default_factory=list)
    developers: list[DeveloperConfig] = Field(default_factory=_solo_developer)
    """Defaults to one developer (``developer``, an admin): a solo setup."""
