"""Where each configured developer sits (squad, tribe, region), from the organisation
section: what the engine's slot dispatcher counts and quotas apply to."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from orchestra.config.org import OrganisationSection, UnitConfig
from orchestra.scheduling.units import Level, Placement

NO_UNIT = "-"
"""The unit of a developer who belongs to none at a level."""


def _path(section: OrganisationSection, start: str | None) -> list[UnitConfig]:
    units = {u.name: u for u in section.units}
    path: list[UnitConfig] = []
    name = start
    while name is not None and name in units and units[name] not in path:
        path.append(units[name])
        name = units[name].parent
    return path


def placements(section: OrganisationSection) -> dict[str, Placement]:
    """Every developer's placement: the nearest squad and tribe above their unit, and
    their first region (their own, else the nearest unit's with regions)."""
    found: dict[str, Placement] = {}
    for dev in section.developers:
        path = _path(section, dev.unit)
        squad = next((u.name for u in path if u.kind == "squad"), NO_UNIT)
        tribe = next((u.name for u in path if u.kind == "tribe"), NO_UNIT)
        regions = dev.regions or next((u.regions for u in path if u.regions), [])
        found[dev.name] = Placement(dev.name, squad, tribe, regions[0] if regions else NO_UNIT)
    return found


def level_units(
    section: OrganisationSection, level: Level, people: Iterable[Placement]
) -> list[str]:
    """The units quotas at ``level`` are given to: the configured ones (squads, tribes, or
    regions named on units and developers) and those the ``people`` belong to."""
    kinds = {"squad": "squad", "tribe": "tribe"}
    named: set[str] = set()
    if level in kinds:
        named = {u.name for u in section.units if u.kind == kinds[level]}
    elif level == "region":
        named = {r for u in section.units for r in u.regions}
        named |= {r for d in section.developers for r in d.regions}
    return sorted(named | {p.unit(level) for p in people})


def headcounts(people: Iterable[Placement], level: Level) -> Counter[str]:
    """Developers per unit at ``level``."""
    return Counter(p.unit(level) for p in people)


def tribes_by_region(people: Iterable[Placement]) -> dict[str, list[str]]:
    """The tribes within each region (for ``enterprise_mesh``'s nested minimums)."""
    found: dict[str, set[str]] = {}
    for p in people:
        found.setdefault(p.region, set()).add(p.tribe)
    return {region: sorted(tribes) for region, tribes in found.items()}


def check_weights(weights: Mapping[str, float], units: Iterable[str], level: Level) -> list[str]:
    """Weights naming a unit that is not one of ``units`` at ``level``."""
    known = set(units)
    return [
        f"{unit!r} is not a {level} of the organisation" for unit in weights if unit not in known
    ]
