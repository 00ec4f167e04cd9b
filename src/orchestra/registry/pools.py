"""Per-unit pools: which agents a division, tribe or squad may use.

A unit's own pool narrows what its parent allows: the agents a unit may use are the
served agents every pool on its way up to the organisation allows. A unit without a pool
of its own inherits its parent's; the organisation (its name) may have one too. So a squad
can only narrow its tribe's pool, never widen it.

Entries are agent names, ``category:<name>`` (every agent of a category) or ``*``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from orchestra.config.names import close_matches
from orchestra.org import OrgTree
from orchestra.policy import Principal
from orchestra.registry.errors import (
    AgentNotInPool,
    AgentUnknown,
    RegistryConflict,
    UnknownUnit,
)
from orchestra.registry.model import AgentSummary, PoolView
from orchestra.registry.registry import AgentRegistry, definition_of
from orchestra.registry.seam import REGISTRY_ACTIONS, unit_resource
from orchestra.roster import AgentDefinition, Roster
from orchestra.store.tables.registry import RegistryPool

ALL = "*"
CATEGORY = "category:"


def unit_chain(tree: OrgTree, unit: str | None) -> tuple[str, ...]:
    """``unit`` and its ancestors, then the organisation's name (``None``: only that)."""
    if unit is None or unit == tree.name:
        return (tree.name,)
    chain: list[str] = []
    current = tree.unit(unit)
    if current is None:
        close = close_matches(unit, [u.name for u in tree.units if u.kind != "guild"])
        raise UnknownUnit(
            f"the organisation has no unit named {unit!r}",
            hint=f"did you mean {', '.join(close)}?"
            if close
            else "run `orchestra org show` to see the units",
        )
    while current is not None and current.name not in chain:
        chain.append(current.name)
        current = tree.unit(current.parent) if current.parent else None
    return (*chain, tree.name)


def _allows(entries: Sequence[str], summary: AgentSummary) -> bool:
    served = summary.served
    category = served.category if served is not None else summary.latest.category
    return any(
        e == ALL
        or e == summary.agent
        or (e.startswith(CATEGORY) and e[len(CATEGORY) :] == category)
        for e in entries
    )


@dataclass
class UnitPools:
    """Reads and sets the pools of the units of ``tree`` in ``registry``'s database."""

    registry: AgentRegistry
    tree: OrgTree

    def own(self) -> dict[str, tuple[str, ...]]:
        """Each unit's own pool entries."""
        with self.registry.database.session() as session:
            rows = list(session.scalars(select(RegistryPool)))
        return {r.unit: tuple(json.loads(r.entries)) for r in rows}

    def view(self, unit: str | None) -> PoolView:
        """The pool of ``unit`` (``None``: the organisation) and where it comes from."""
        chain = unit_chain(self.tree, unit)
        own = self.own()
        restricted = tuple(u for u in chain if u in own)
        agents = tuple(
            s.agent
            for s in self.registry.summaries(served_only=True)
            if all(_allows(own[u], s) for u in restricted)
        )
        return PoolView(chain[0], chain, own.get(chain[0]), restricted, agents)

    def _check_entries(self, unit: str, entries: Sequence[str]) -> tuple[str, ...]:
        summaries = self.registry.summaries()
        names = [s.agent for s in summaries]
        categories = {s.latest.category for s in summaries}
        cleaned: list[str] = []
        for entry in dict.fromkeys(e.strip() for e in entries if e.strip()):
            if entry.startswith(CATEGORY):
                name = entry[len(CATEGORY) :]
                if name not in categories:
                    close = close_matches(name, sorted(categories))
                    raise UnknownUnit(
                        f"no published agent has category {name!r} (pool of {unit!r})",
                        hint=f"did you mean {', '.join(CATEGORY + c for c in close)}?"
                        if close
                        else "run `orchestra registry list` to see the categories",
                    )
            elif entry != ALL and entry not in names:
                raise AgentUnknown(entry, names)
            cleaned.append(entry)
        return tuple(cleaned)

    def _check_within_parent(self, chain: tuple[str, ...], entries: tuple[str, ...]) -> None:
        """A unit narrows its parent's pool: naming an agent the parent excludes is refused
        (``category:`` and ``*`` entries are narrowed by the parent silently)."""
        if len(chain) < 2:
            return
        parent = self.view(chain[1])
        if not parent.restricted_by:
            return
        outside = [e for e in entries if e != ALL and not e.startswith(CATEGORY)]
        outside = [e for e in outside if e not in parent.agents]
        if outside:
            raise RegistryConflict(
                f"{chain[0]!r} may only narrow the pool of {chain[1]!r}, which does not allow "
                f"{', '.join(outside)} (narrowed by {', '.join(parent.restricted_by)})",
                hint=f"remove them, or ask a lead of {parent.restricted_by[0]!r} to add them "
                "to its pool",
            )

    def set(self, principal: Principal, unit: str, entries: Iterable[str]) -> PoolView:
        """Give ``unit`` its own pool (it narrows what the units above allow)."""
        chain = unit_chain(self.tree, unit)
        checked = self._check_entries(chain[0], list(entries))
        self._check_within_parent(chain, checked)
        self.registry.policy.require(
            principal, REGISTRY_ACTIONS["pool"], unit_resource(self.tree, chain[0])
        )
        with self.registry.audit.transaction() as tx, tx.session() as session:
            row = session.get(RegistryPool, chain[0], with_for_update=True)
            before = json.loads(row.entries) if row is not None else None
            if row is None:
                row = RegistryPool(unit=chain[0])
                session.add(row)
            row.entries = json.dumps(list(checked))
            row.updated_by = principal.id
            row.updated_at = self.registry.clock()
            session.flush()
            tx.append(
                principal.actor,
                "registry.pool.set",
                chain[0],
                {"before": before, "after": list(checked)},
            )
        return self.view(chain[0])

    def clear(self, principal: Principal, unit: str) -> PoolView:
        """Remove ``unit``'s own pool: it inherits its parent's again."""
        chain = unit_chain(self.tree, unit)
        self.registry.policy.require(
            principal, REGISTRY_ACTIONS["pool"], unit_resource(self.tree, chain[0])
        )
        with self.registry.audit.transaction() as tx, tx.session() as session:
            row = session.get(RegistryPool, chain[0], with_for_update=True)
            if row is not None:
                before = json.loads(row.entries)
                session.delete(row)
                session.flush()
                tx.append(principal.actor, "registry.pool.clear", chain[0], {"before": before})
        return self.view(chain[0])

    def roster_for(self, developer: str) -> PoolRoster:
        """The agents ``developer`` may use (their home unit's pool), as a roster."""
        found = next((d for d in self.tree.developers if d.name == developer), None)
        if found is None:
            close = close_matches(developer, [d.name for d in self.tree.developers])
            raise UnknownUnit(
                f"the organisation has no developer named {developer!r}",
                hint=f"did you mean {', '.join(close)}?"
                if close
                else "add them to orchestra.yaml and run `orchestra org sync`",
            )
        view = self.view(found.unit)
        allowed = set(view.agents)
        served = [s for s in self.registry.summaries(served_only=True) if s.agent in allowed]
        agents = [definition_of(s.served) for s in served if s.served is not None]
        warnings = tuple(w for s in served if (w := s.warning))
        return PoolRoster(agents, view=view, known=self.registry.names(), warnings=warnings)


class PoolRoster(Roster):
    """A :class:`~orchestra.roster.Roster` of the agents one unit's pool allows.

    Asking it for an agent outside the pool raises :class:`AgentNotInPool` naming the
    pool and the unit; a name never published raises :class:`AgentUnknown`.
    """

    def __init__(
        self,
        agents: Iterable[AgentDefinition],
        *,
        view: PoolView,
        known: Iterable[str],
        warnings: tuple[str, ...] = (),
    ) -> None:
        super().__init__(agents)
        self.view = view
        self.known = tuple(known)
        self.warnings = warnings
        """One line per served agent whose version is deprecated."""

    def get(self, name: str) -> AgentDefinition:
        """The agent called ``name`` if the pool allows it."""
        found = self.find(name)
        if found is not None:
            return found
        if name not in self.known:
            raise AgentUnknown(name, self.known)
        where = (
            f"the pool of {self.view.restricted_by[0]!r}"
            if self.view.restricted_by
            else "the registry's served agents"
        )
        raise AgentNotInPool(
            f"agent {name!r} is not in the agent pool of unit {self.view.unit!r} "
            f"(restricted by {where}; units: {' < '.join(self.view.chain)})",
            hint=f"use an agent of the pool (`orchestra registry pool show {self.view.unit}`), "
            "or ask a lead to add it to the pool",
        )
