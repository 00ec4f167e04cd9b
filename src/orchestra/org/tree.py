"""The organisation tree: units (division, tribe, squad), guilds, developers and roles.

The configuration holds a flat list of units that name their parent. This module checks
that list (unknown parents, cycles, a squad above a tribe, duplicate names, members of
unknown units) and builds an immutable :class:`OrgTree` from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from orchestra.config.org import DeveloperConfig, OrganisationSection, UnitConfig
from orchestra.errors import OrgError

LEVEL: Mapping[str, int] = MappingProxyType({"division": 3, "tribe": 2, "squad": 1})
"""How high a kind sits: a unit's parent must sit at the same level or higher."""

ROLES = ("admin", "lead", "developer", "viewer")


@dataclass(frozen=True)
class OrgProblem:
    """One thing wrong with the organisation section."""

    path: tuple[str, ...]
    """Key path in the configuration, e.g. ``("organisation", "units", "2", "parent")``."""
    message: str
    hint: str


@dataclass(frozen=True)
class OrgUnit:
    """A division, tribe, squad or guild."""

    name: str
    kind: str
    parent: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Developer:
    """A person in the organisation."""

    name: str
    role: str = "developer"
    unit: str | None = None
    guilds: tuple[str, ...] = ()
    email: str | None = None


@dataclass(frozen=True)
class OrgTree:
    """A checked organisation: every parent exists, no cycles, names unique."""

    name: str
    units: tuple[OrgUnit, ...] = ()
    developers: tuple[Developer, ...] = ()
    stage: str | None = None
    """Stage pinned in the configuration, if any."""

    @property
    def headcount(self) -> int:
        """Number of developers (every role counts: they all may run agents)."""
        return len(self.developers)

    @property
    def guilds(self) -> tuple[OrgUnit, ...]:
        """Units of kind ``guild``."""
        return tuple(u for u in self.units if u.kind == "guild")

    @property
    def team_names(self) -> frozenset[str]:
        """Names that ``teams:`` overrides may use: every unit that is not a guild."""
        return frozenset(u.name for u in self.units if u.kind != "guild")

    def unit(self, name: str) -> OrgUnit | None:
        """The unit called ``name``, if any."""
        return next((u for u in self.units if u.name == name), None)

    def children(self, parent: str | None) -> list[OrgUnit]:
        """Units (not guilds) directly under ``parent`` (``None``: the organisation)."""
        return [u for u in self.units if u.parent == parent and u.kind != "guild"]

    def members(self, unit: str | None) -> list[Developer]:
        """Developers whose home unit is ``unit`` (``None``: directly in the organisation)."""
        return [d for d in self.developers if d.unit == unit]

    def guild_members(self, guild: str) -> list[Developer]:
        """Developers who belong to guild ``guild``."""
        return [d for d in self.developers if guild in d.guilds]

    def to_dict(self) -> dict[str, Any]:
        """The tree as nested plain data (for ``--json``)."""

        def unit_dict(unit: OrgUnit) -> dict[str, Any]:
            return {
                "name": unit.name,
                "kind": unit.kind,
                "description": unit.description,
                "developers": [_developer_dict(d) for d in self.members(unit.name)],
                "units": [unit_dict(c) for c in self.children(unit.name)],
            }

        return {
            "name": self.name,
            "stage": self.stage,
            "headcount": self.headcount,
            "developers": [_developer_dict(d) for d in self.members(None)],
            "units": [unit_dict(u) for u in self.children(None)],
            "guilds": [
                {
                    "name": g.name,
                    "description": g.description,
                    "members": [d.name for d in self.guild_members(g.name)],
                }
                for g in self.guilds
            ],
        }


def _developer_dict(dev: Developer) -> dict[str, Any]:
    return {"name": dev.name, "role": dev.role, "guilds": list(dev.guilds), "email": dev.email}


class OrgInvalid(OrgError):
    """The organisation section has problems; ``problems`` lists every one."""

    def __init__(self, problems: list[OrgProblem]) -> None:
        first = problems[0]
        super().__init__(f"{'.'.join(first.path)}: {first.message}", hint=first.hint)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(f"{'.'.join(p.path)}: {p.message}\n  fix: {p.hint}" for p in self.problems)


def org_problems(section: OrganisationSection) -> list[OrgProblem]:
    """Every problem in ``section``: duplicates, unknown parents, cycles, bad nesting."""
    kinds = {u.name: u.kind for u in section.units}
    problems = _duplicate_units(section)
    for i, unit in enumerate(section.units):
        problem = _parent_problem(unit, kinds, ("organisation", "units", str(i), "parent"))
        if problem is not None:
            problems.append(problem)
    problems.extend(_cycles(section))
    problems.extend(_developer_problems(section, kinds))
    return problems


def _duplicate_units(section: OrganisationSection) -> list[OrgProblem]:
    problems: list[OrgProblem] = []
    units: dict[str, int] = {}
    for i, unit in enumerate(section.units):
        if unit.name in units:
            problems.append(
                OrgProblem(
                    ("organisation", "units", str(i), "name"),
                    f"unit {unit.name!r} is defined twice (first as unit #{units[unit.name]})",
                    "give each unit a unique name, or merge the two entries",
                )
            )
        else:
            units[unit.name] = i
    return problems


def _parent_problem(
    unit: UnitConfig, kinds: Mapping[str, str], where: tuple[str, ...]
) -> OrgProblem | None:
    """What is wrong with ``unit``'s parent link, if anything (cycles aside)."""
    if unit.parent is None:
        return None
    if unit.kind == "guild":
        return OrgProblem(
            where,
            f"guild {unit.name!r} has a parent; guilds cut across the tree",
            "remove `parent` from the guild; add members through developers' `guilds`",
        )
    if unit.parent == unit.name:
        return OrgProblem(
            where,
            f"unit {unit.name!r} is its own parent",
            "set `parent` to the enclosing unit, or remove it",
        )
    parent_kind = kinds.get(unit.parent)
    if parent_kind is None:
        return OrgProblem(
            where,
            f"unit {unit.name!r} names unknown parent {unit.parent!r}",
            f"add a unit named {unit.parent!r}, or correct the name "
            f"(known units: {', '.join(sorted(kinds)) or 'none'})",
        )
    if parent_kind == "guild":
        return OrgProblem(
            where,
            f"unit {unit.name!r} has guild {unit.parent!r} as parent",
            "a guild cannot contain units; use a division or tribe as parent",
        )
    if LEVEL[parent_kind] < LEVEL[unit.kind]:
        return OrgProblem(
            where,
            f"{unit.kind} {unit.name!r} sits under {parent_kind} {unit.parent!r}",
            "nest squads in tribes and tribes in divisions, not the other way round",
        )
    return None


def _developer_problems(section: OrganisationSection, kinds: Mapping[str, str]) -> list[OrgProblem]:
    """Duplicate developers, unknown or guild home units, and guilds that are not guilds."""
    problems: list[OrgProblem] = []
    developers: dict[str, int] = {}
    for i, dev in enumerate(section.developers):
        base = ("organisation", "developers", str(i))
        if dev.name in developers:
            problems.append(
                OrgProblem(
                    (*base, "name"),
                    f"developer {dev.name!r} is listed twice (first as developer "
                    f"#{developers[dev.name]})",
                    "remove the duplicate entry, or give the second person a distinct name",
                )
            )
        else:
            developers[dev.name] = i
        home = _home_unit_problem(dev, kinds, (*base, "unit"))
        if home is not None:
            problems.append(home)
        problems.extend(
            OrgProblem(
                (*base, "guilds", str(j)),
                f"developer {dev.name!r} joins {guild!r}, which is not a guild",
                f"add a unit with `kind: guild` named {guild!r}, or correct the name",
            )
            for j, guild in enumerate(dev.guilds)
            if kinds.get(guild) != "guild"
        )
    return problems


def _home_unit_problem(
    dev: DeveloperConfig, kinds: Mapping[str, str], where: tuple[str, ...]
) -> OrgProblem | None:
    if dev.unit is None:
        return None
    kind = kinds.get(dev.unit)
    if kind is None:
        return OrgProblem(
            where,
            f"developer {dev.name!r} belongs to unknown unit {dev.unit!r}",
            f"add a unit named {dev.unit!r}, or correct the name",
        )
    if kind == "guild":
        return OrgProblem(
            where,
            f"developer {dev.name!r} has guild {dev.unit!r} as home unit",
            "set `unit` to a squad (or tribe/division); list guilds under `guilds`",
        )
    return None


def _cycles(section: OrganisationSection) -> list[OrgProblem]:
    """One problem per cycle of parent links, reported at its first unit."""
    parent = {u.name: u.parent for u in section.units if u.kind != "guild"}
    index = {u.name: i for i, u in reversed(list(enumerate(section.units)))}
    problems: list[OrgProblem] = []
    done: set[str] = set()
    for start in parent:
        path: list[str] = []
        node: str | None = start
        while node is not None and node in parent and node not in done and node not in path:
            path.append(node)
            node = parent[node]
        if node is not None and node in path:
            loop = path[path.index(node) :]
            if len(loop) > 1:  # a self-parent is reported on its own
                first = min(loop, key=lambda n: index[n])
                problems.append(
                    OrgProblem(
                        ("organisation", "units", str(index[first]), "parent"),
                        "the parent links form a cycle: " + " -> ".join([*loop, loop[0]]),
                        "break the cycle: one of these units must have a parent outside it "
                        "(or none)",
                    )
                )
        done.update(path)
    return problems


def build_org_tree(section: OrganisationSection) -> OrgTree:
    """Check ``section`` and build its :class:`OrgTree`; raise :class:`OrgInvalid`."""
    problems = org_problems(section)
    if problems:
        raise OrgInvalid(problems)
    return OrgTree(
        name=section.name,
        stage=section.stage,
        units=tuple(OrgUnit(u.name, u.kind, u.parent, u.description) for u in section.units),
        developers=tuple(
            Developer(d.name, d.role, d.unit, tuple(sorted(set(d.guilds))), d.email)
            for d in section.developers
        ),
    )
