"""The names of the organisation, for refusing what names someone who does not exist.

Keys, budgets, rate limits and team overrides name developers and units; once the
organisation is declared in ``orchestra.yaml`` (units, or developers listed), a name that
is not in it is refused, with the close matches. A configuration that declares no
organisation (the solo default) names no one, so nothing is checked against it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from orchestra.config.org import OrganisationSection


@dataclass(frozen=True)
class OrgNames:
    """The developers and units an ``orchestra.yaml`` declares."""

    organisation: str
    developers: frozenset[str]
    units: frozenset[str]

    @classmethod
    def of(cls, section: OrganisationSection) -> OrgNames | None:
        """The names, or ``None`` when the organisation is not declared (see the module)."""
        if not section.units and "developers" not in section.model_fields_set:
            return None
        return cls(
            section.name,
            frozenset(d.name for d in section.developers),
            frozenset(u.name for u in section.units),
        )

    def unknown_developer(self, name: str) -> str | None:
        """Why ``name`` is refused as a developer, or ``None`` when it exists."""
        return None if name in self.developers else _unknown("developer", name, self.developers)

    def unknown_unit(self, name: str) -> str | None:
        """Why ``name`` is refused as a unit (team), or ``None`` when it exists."""
        return None if name in self.units else _unknown("unit", name, self.units)

    def unknown_subject(self, scope: str, subject: str) -> str | None:
        """Why a budget's or a limit's subject is refused (``*`` means everyone)."""
        if subject == "*":
            return None
        if scope == "developer":
            return self.unknown_developer(subject)
        if scope == "team":
            return self.unknown_unit(subject)
        if scope == "org" and subject != self.organisation:
            return _unknown("organisation", subject, [self.organisation])
        return None


def close_matches(name: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """Names like ``name`` among ``known``, best first (for "did you mean")."""
    names = list(known)
    close = difflib.get_close_matches(name, names, n=limit, cutoff=0.6)
    return close or [n for n in names if name and name in n][:limit]


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        return f"no {kind} {name!r} in the organisation; did you mean {', '.join(close)}?"
    listed = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
    return f"no {kind} {name!r} in the organisation (known: {listed or 'none'})"
