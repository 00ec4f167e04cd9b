"""Who and when a figure is about: a unit (or one developer) and a period; and who may
see developer-level figures.

Units are the organisation's (``orchestra org sync``): the organisation, a division, a
tribe, a squad, or one developer. A developer is known in the streams by their name, their
e-mail (commits) and any aliases (GitHub/GitLab logins, ``insight.aliases``).
"""

from __future__ import annotations

import calendar
import difflib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from orchestra.analytics.errors import InvalidPeriod, NotVisible, UnknownUnit
from orchestra.org import OrgTree


@dataclass(frozen=True)
class Period:
    """A half-open span of time ``[start, end)``, in UTC."""

    start: datetime
    end: datetime
    label: str = ""

    @property
    def weeks(self) -> float:
        """Length in weeks (for rates per week)."""
        return (self.end - self.start).total_seconds() / (7 * 86400)

    def contains(self, moment: datetime | None) -> bool:
        """Whether ``moment`` falls in the period (``None`` never does)."""
        if moment is None:
            return False
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return self.start <= moment < self.end


def _day(text: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    except ValueError as exc:
        raise InvalidPeriod(f"not a date: {text!r}", hint="use YYYY-MM-DD") from exc


def parse_period(text: str | None, *, now: datetime | None = None) -> Period:
    """``2026``, ``2026-11``, ``2026-Q4``, ``2026-11-01..2026-12-01`` (end excluded) or
    ``last-30d``; ``None`` means the last 90 days."""
    now = now or datetime.now(UTC)
    spec = (text or "last-90d").strip()
    if match := re.fullmatch(r"last-(\d+)d", spec):
        return Period(now - timedelta(days=int(match[1])), now, spec)
    if match := re.fullmatch(r"(\d{4})", spec):
        year = int(match[1])
        return Period(datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC), spec)
    if match := re.fullmatch(r"(\d{4})-Q([1-4])", spec):
        year, quarter = int(match[1]), int(match[2])
        start = datetime(year, 3 * quarter - 2, 1, tzinfo=UTC)
        end = datetime(year + (quarter == 4), (3 * quarter) % 12 + 1, 1, tzinfo=UTC)
        return Period(start, end, spec)
    if match := re.fullmatch(r"(\d{4})-(\d{2})", spec):
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise InvalidPeriod(f"no month {month}", hint="months run from 01 to 12")
        days = calendar.monthrange(year, month)[1]
        start = datetime(year, month, 1, tzinfo=UTC)
        return Period(start, start + timedelta(days=days), spec)
    if ".." in spec:
        first, _, last = spec.partition("..")
        start, end = _day(first), _day(last)
        if end <= start:
            raise InvalidPeriod(f"{spec!r} ends before it starts", hint="write START..END")
        return Period(start, end, spec)
    raise InvalidPeriod(
        f"cannot read the period {spec!r}",
        hint="use 2026, 2026-11, 2026-Q4, 2026-11-01..2026-12-01 or last-30d",
    )


UNIT_KINDS = ("organisation", "division", "tribe", "squad", "developer")


@dataclass(frozen=True)
class Scope:
    """The developers a figure is about, and how the ledger names them."""

    kind: str
    """One of :data:`UNIT_KINDS`."""
    name: str
    developers: frozenset[str]
    """Developer names in the unit (all of them for the organisation)."""
    identities: Mapping[str, str] = field(default_factory=dict)
    """Name, e-mail or alias (lower case) -> developer name, for everyone in the unit."""

    @property
    def is_organisation(self) -> bool:
        """Whether the scope is the whole organisation (nothing is filtered out)."""
        return self.kind == "organisation"

    def developer_of(self, identity: str | None) -> str | None:
        """The developer in scope known as ``identity`` (login, e-mail, name), if any."""
        return self.identities.get((identity or "").lower())


def _descendants(tree: OrgTree, unit: str) -> set[str]:
    found, todo = {unit}, [unit]
    while todo:
        for child in tree.children(todo.pop()):
            if child.name not in found:
                found.add(child.name)
                todo.append(child.name)
    return found


def resolve_scope(
    tree: OrgTree, unit: str | None, aliases: Mapping[str, str] | None = None
) -> Scope:
    """The scope called ``unit`` (a unit's or a developer's name; ``None``: the
    organisation). ``aliases`` maps logins to developer names."""
    by_name = {d.name: d for d in tree.developers}
    if unit is None or unit == tree.name:
        kind, name, members = "organisation", tree.name, set(by_name)
    elif unit in by_name:
        kind, name, members = "developer", unit, {unit}
    elif (found := tree.unit(unit)) is not None and found.kind != "guild":
        below = _descendants(tree, unit)
        kind, name = found.kind, unit
        members = {d.name for d in tree.developers if d.unit in below}
    else:
        known = [u.name for u in tree.units if u.kind != "guild"] + list(by_name)
        close = difflib.get_close_matches(unit, known, n=3, cutoff=0.6)
        raise UnknownUnit(
            f"no unit or developer is called {unit!r}",
            hint=f"did you mean {', '.join(close)}?"
            if close
            else "`orchestra org show` lists them (sync them first: `orchestra org sync`)",
        )
    identities: dict[str, str] = {}
    for dev in members:
        identities[dev.lower()] = dev
        email = by_name[dev].email
        if email:
            identities[email.lower()] = dev
    for alias, dev in (aliases or {}).items():
        if dev in members:
            identities[alias.lower()] = dev
    return Scope(kind, name, frozenset(members), identities)


class Principal(Protocol):
    """Who asks: a name, roles (``admin``, ``lead``, ``developer``, ``viewer``) and the
    unit they belong to (what ``orchestra.policy`` will provide)."""

    @property
    def name(self) -> str:
        """The developer's name."""

    @property
    def roles(self) -> Collection[str]:
        """Their roles."""

    @property
    def unit(self) -> str | None:
        """Their home unit (a lead leads it and the units below it)."""


@dataclass(frozen=True)
class Asker:
    """A plain :class:`Principal` (the CLI's, and tests')."""

    name: str
    roles: frozenset[str] = frozenset({"developer"})
    unit: str | None = None


def principal_in(tree: OrgTree | None, name: str, *, admin: bool = False) -> Asker:
    """The principal ``name`` is in the stored organisation: their role and home unit
    (``admin`` adds the admin role, as an admin gateway key does). Someone the organisation
    does not know has no role: they see unit figures only."""
    developer = next((d for d in tree.developers if d.name == name), None) if tree else None
    roles = {developer.role} if developer is not None else set()
    if admin:
        roles.add("admin")
    return Asker(name, frozenset(roles), developer.unit if developer is not None else None)


def check_visible(principal: Principal, scope: Scope, tree: OrgTree) -> None:
    """Raise :class:`NotVisible` unless ``principal`` may see ``scope``'s figures.

    Unit figures are visible to everyone in the organisation; a developer's own figures to
    that developer, the leads of their unit or of a unit above it, and admins."""
    if scope.kind != "developer" or "admin" in principal.roles or principal.name == scope.name:
        return
    if "lead" in principal.roles and principal.unit is not None:
        home = next((d.unit for d in tree.developers if d.name == scope.name), None)
        if home is not None and home in _descendants(tree, principal.unit):
            return
    raise NotVisible(
        f"{principal.name!r} may not see {scope.name!r}'s own figures",
        hint="developer figures are shown to the developer, their leads and admins; "
        "ask for their squad's figures instead",
    )
