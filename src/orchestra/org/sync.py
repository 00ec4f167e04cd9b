"""Storing the organisation: sync from the configuration, read back as a tree.

``sync_org`` makes the database hold exactly the given tree: it adds what is new,
updates what changed and removes what the configuration no longer has, all in one
transaction, so an error leaves the previous state untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from orchestra.errors import StoreError
from orchestra.org.tree import Developer, OrgTree, OrgUnit
from orchestra.store import Database
from orchestra.store.tables.org import (
    OrgDeveloperRow,
    OrgGuildMemberRow,
    OrgOrganisationRow,
    OrgUnitRow,
)


@dataclass
class SyncResult:
    """What a sync changed; each entry reads like ``unit checkout`` or ``developer ana``."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the sync wrote anything."""
        return bool(self.added or self.updated or self.removed)


def sync_org(database: Database, tree: OrgTree) -> SyncResult:
    """Make the stored organisation equal ``tree``, in one transaction."""
    try:
        with database.session() as session:
            result = sync_org_session(session, tree)
    except SQLAlchemyError as exc:
        raise StoreError(
            f"could not store the organisation: {type(exc).__name__}",
            hint="nothing was written; check the database URL and that it is reachable",
        ) from exc
    return result


def sync_org_session(session: Session, tree: OrgTree) -> SyncResult:
    """Make the stored organisation equal ``tree`` in the caller's session (its
    transaction decides: an audited change commits with its audit entry)."""
    result = SyncResult()
    _sync_organisation(session, tree, result)
    _sync_units(session, tree, result)
    _sync_developers(session, tree, result)
    _sync_guild_members(session, tree, result)
    return result


def _sync_organisation(session: Session, tree: OrgTree, result: SyncResult) -> None:
    row = session.get(OrgOrganisationRow, 1)
    if row is None:
        session.add(OrgOrganisationRow(id=1, name=tree.name, stage=tree.stage))
        result.added.append(f"organisation {tree.name}")
    elif (row.name, row.stage) != (tree.name, tree.stage):
        row.name, row.stage = tree.name, tree.stage
        result.updated.append(f"organisation {tree.name}")


def _sync_units(session: Session, tree: OrgTree, result: SyncResult) -> None:
    wanted = [
        (
            unit.name,
            {
                "kind": unit.kind,
                "parent": unit.parent,
                "description": unit.description,
                "position": position,
            },
        )
        for position, unit in enumerate(tree.units)
    ]
    _sync_named_rows(session, OrgUnitRow, wanted, lambda row: f"{row.kind} {row.name}", result)


def _sync_developers(session: Session, tree: OrgTree, result: SyncResult) -> None:
    wanted = [
        (dev.name, {"role": dev.role, "unit": dev.unit, "email": dev.email, "position": position})
        for position, dev in enumerate(tree.developers)
    ]
    _sync_named_rows(session, OrgDeveloperRow, wanted, lambda row: f"developer {row.name}", result)


_NamedRow = TypeVar("_NamedRow", OrgUnitRow, OrgDeveloperRow)


def _sync_named_rows(
    session: Session,
    table: type[_NamedRow],
    wanted: Sequence[tuple[str, dict[str, Any]]],
    label: Callable[[_NamedRow], str],
    result: SyncResult,
) -> None:
    """Make ``table`` hold exactly the rows in ``wanted`` (name, column values).

    A list, not a dict: a name given twice is inserted twice and fails the transaction,
    rather than one of the two silently winning.

    ``label`` names a row in the result; it is applied after an update, so a unit whose
    kind changed is reported under its new kind, and a removed row under its stored one.
    """
    existing = {r.name: r for r in session.scalars(select(table))}
    for name, values in wanted:
        row = existing.pop(name, None)
        if row is None:
            row = table(name=name, **values)
            session.add(row)
            result.added.append(label(row))
        elif any(getattr(row, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            result.updated.append(label(row))
    for row in existing.values():
        session.delete(row)
        result.removed.append(label(row))


def _sync_guild_members(session: Session, tree: OrgTree, result: SyncResult) -> None:
    existing = {(r.guild, r.developer): r for r in session.scalars(select(OrgGuildMemberRow))}
    for dev in tree.developers:
        for guild in dev.guilds:
            if existing.pop((guild, dev.name), None) is None:
                session.add(OrgGuildMemberRow(guild=guild, developer=dev.name))
                result.added.append(f"guild member {dev.name} in {guild}")
    for (guild, developer), row in existing.items():
        session.delete(row)
        result.removed.append(f"guild member {developer} in {guild}")


def load_org(database: Database) -> OrgTree | None:
    """The stored organisation, or ``None`` when nothing was synced yet."""
    with database.session() as session:
        org = session.get(OrgOrganisationRow, 1)
        if org is None:
            return None
        units = session.scalars(select(OrgUnitRow).order_by(OrgUnitRow.position)).all()
        devs = session.scalars(select(OrgDeveloperRow).order_by(OrgDeveloperRow.position)).all()
        guilds: dict[str, list[str]] = {}
        for member in session.scalars(select(OrgGuildMemberRow).order_by(OrgGuildMemberRow.guild)):
            guilds.setdefault(member.developer, []).append(member.guild)
        return OrgTree(
            name=org.name,
            stage=org.stage,
            units=tuple(OrgUnit(u.name, u.kind, u.parent, u.description) for u in units),
            developers=tuple(
                Developer(d.name, d.role, d.unit, tuple(guilds.get(d.name, ())), d.email)
                for d in devs
            ),
        )
