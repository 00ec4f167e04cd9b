"""The agent registry: versioned definitions, their review, provenance and diffs.

Every change commits in one transaction with its audit entry (``registry.*`` actions,
the acting principal as actor): a change is never stored without its record, nor the
record without the change. The policy engine is asked before each change; a refusal is
audited by it with the ids of the policies that refused, and raised as ``PolicyDenied``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestra.accounting import AccountingStore, AuditLog
from orchestra.policy import PolicyEngine, PolicySource, Principal
from orchestra.registry.errors import (
    AgentUnknown,
    InvalidDefinition,
    RegistryConflict,
    VersionUnknown,
)
from orchestra.registry.model import SERVED_STATES, AgentSummary, AgentVersion
from orchestra.registry.seam import REGISTRY_ACTIONS, agent_resource
from orchestra.roster import AgentDefinition, RosterInvalid, check_agent
from orchestra.store import Database
from orchestra.store.tables.registry import RegistryVersion

Clock = Callable[[], datetime]

_VERSION = re.compile(r"^v?([1-9][0-9]{0,8})$")

TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "approve": (frozenset({"pending"}), "approved"),
    "reject": (frozenset({"pending"}), "rejected"),
    "deprecate": (frozenset({"approved"}), "deprecated"),
    "yank": (frozenset({"pending", "approved", "rejected", "deprecated"}), "yanked"),
}
"""Verb -> (states it applies to, state it leads to); the policy action is
:data:`~orchestra.registry.seam.REGISTRY_ACTIONS`' entry for the verb."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every stored time is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def digest_of(text: str) -> str:
    """The SHA-256 of a definition's text (its identity across versions)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_version(agent: str, text: str | int, versions: Iterable[int]) -> int:
    """``3``, ``"3"`` or ``"v3"`` -> 3; :class:`VersionUnknown` for anything else."""
    match = _VERSION.match(str(text).strip())
    if match is None:
        raise VersionUnknown(agent, repr(str(text)), versions)
    return int(match.group(1))


def validate_definition(text: str, source: str) -> AgentDefinition:
    """The definition in ``text`` checked by the roster's validator; every problem of an
    invalid one is raised in one :class:`InvalidDefinition`."""
    try:
        agent, problems = check_agent(text, source)
    except RosterInvalid as exc:  # pragma: no cover - check_agent returns its problems
        problems, agent = exc.problems, None
    errors = [p for p in problems if p.severity == "error"]
    if agent is None or errors:
        invalid = RosterInvalid(errors or problems)
        error = InvalidDefinition(
            f"the agent definition is invalid: {invalid.message}", hint=invalid.hint
        )
        error.problems = invalid.problems  # type: ignore[attr-defined]
        raise error
    return agent


def _version_of(row: RegistryVersion) -> AgentVersion:
    return AgentVersion(
        agent=row.agent,
        version=row.version,
        state=row.state,
        digest=row.digest,
        description=row.description,
        category=row.category,
        tags=tuple(row.tags.split()),
        publisher=row.publisher,
        published_at=_aware(row.published_at) or row.published_at,
        reviewed_by=row.reviewed_by,
        reviewed_at=_aware(row.reviewed_at),
        changed_by=row.changed_by,
        changed_at=_aware(row.changed_at),
        note=row.note,
        definition=row.definition,
    )


class AgentRegistry:
    """Versioned agent definitions in the database.

    ``policy`` decides who may publish, approve, deprecate and yank (default: the shipped
    Cedar policies with ``policies.default: permit``, auditing refusals to ``audit``);
    ``audit`` records every change.
    """

    def __init__(
        self,
        database: Database,
        *,
        audit: AuditLog | None = None,
        policy: PolicyEngine | None = None,
        clock: Clock = _utcnow,
        home: Path | None = None,
    ) -> None:
        self.database = database
        self._store: AccountingStore | None = None
        if audit is None:
            self._store = AccountingStore(database)
            audit = AuditLog(self._store, home=home)
        self.audit = audit
        self._policy = policy
        self.clock = clock

    @property
    def policy(self) -> PolicyEngine:
        """The policy engine asked before every change (the default one is built on first
        use: reading the registry never loads the policies)."""
        if self._policy is None:
            self._policy = PolicyEngine(PolicySource(), audit=self.audit)
        return self._policy

    @policy.setter
    def policy(self, engine: PolicyEngine) -> None:
        self._policy = engine

    def close(self) -> None:
        """Release the audit log's write engine (when the registry opened it)."""
        if self._store is not None:
            self._store.close()

    # -- reading -----------------------------------------------------------------------
    def _rows(self, session: Session, agent: str | None = None) -> list[RegistryVersion]:
        query = select(RegistryVersion).order_by(RegistryVersion.agent, RegistryVersion.version)
        if agent is not None:
            query = query.where(RegistryVersion.agent == agent)
        return list(session.scalars(query))

    def names(self) -> list[str]:
        """Every agent ever published, sorted."""
        with self.database.session() as session:
            return sorted(set(session.scalars(select(RegistryVersion.agent))))

    def versions(self, agent: str) -> list[AgentVersion]:
        """Every version of ``agent``, oldest first; :class:`AgentUnknown` if none."""
        with self.database.session() as session:
            rows = self._rows(session, agent)
        if not rows:
            raise AgentUnknown(agent, self.names())
        return [_version_of(r) for r in rows]

    def version(self, agent: str, version: str | int) -> AgentVersion:
        """One version of ``agent`` (``3`` or ``v3``)."""
        versions = self.versions(agent)
        number = parse_version(agent, version, [v.version for v in versions])
        found = next((v for v in versions if v.version == number), None)
        if found is None:
            raise VersionUnknown(agent, f"v{number}", [v.version for v in versions])
        return found

    def summaries(self, *, served_only: bool = False) -> list[AgentSummary]:
        """One summary per agent, sorted by name."""
        with self.database.session() as session:
            rows = self._rows(session)
        by_agent: dict[str, list[AgentVersion]] = {}
        for row in rows:
            by_agent.setdefault(row.agent, []).append(_version_of(row))
        found = [_summary(name, versions) for name, versions in sorted(by_agent.items())]
        return [s for s in found if s.served is not None] if served_only else found

    def summary(self, agent: str) -> AgentSummary:
        """The summary of one agent."""
        return _summary(agent, self.versions(agent))

    def served(self, agent: str) -> AgentVersion:
        """The version of ``agent`` that is served; :class:`RegistryConflict` when none is
        (every version pending, rejected or yanked)."""
        summary = self.summary(agent)
        if summary.served is None:
            raise RegistryConflict(
                f"agent {agent!r} has no version that may be served (newest: "
                f"{summary.latest.label}, {summary.latest.state})",
                hint=f"a lead or admin approves one: `orchestra registry approve {agent} "
                f"{summary.latest.version}`",
            )
        return summary.served

    def diff(self, agent: str, old: str | int, new: str | int) -> str:
        """The unified diff between two versions' definitions ("" when identical)."""
        a, b = self.version(agent, old), self.version(agent, new)
        return "".join(
            difflib.unified_diff(
                a.definition.splitlines(keepends=True),
                b.definition.splitlines(keepends=True),
                fromfile=f"{a.label} ({a.publisher}, {a.published_at:%Y-%m-%d %H:%M})",
                tofile=f"{b.label} ({b.publisher}, {b.published_at:%Y-%m-%d %H:%M})",
            )
        )

    # -- changing ----------------------------------------------------------------------
    def publish(
        self, principal: Principal, text: str, *, source: str = "<published>"
    ) -> AgentVersion:
        """Store ``text`` as the next version of the agent it defines, pending review."""
        definition = validate_definition(text, source)
        self.policy.require(principal, REGISTRY_ACTIONS["publish"], agent_resource(definition.name))
        return self._insert(principal.id, principal.actor, definition, text)

    def _insert(
        self, publisher: str, actor: str, definition: AgentDefinition, text: str
    ) -> AgentVersion:
        digest = digest_of(text)
        now = self.clock()
        with self.audit.transaction() as tx, tx.session() as session:
            rows = self._rows(session, definition.name)
            same = next((r for r in reversed(rows) if r.digest == digest), None)
            if same is not None and same.state != "yanked":
                raise RegistryConflict(
                    f"this definition is already published as {definition.name}@v"
                    f"{same.version} ({same.state})",
                    hint="change the definition before publishing it again",
                )
            row = RegistryVersion(
                agent=definition.name,
                version=(rows[-1].version if rows else 0) + 1,
                state="pending",
                definition=text,
                digest=digest,
                description=definition.description,
                category=definition.category,
                tags=" ".join(definition.specialties),
                publisher=publisher,
                published_at=now,
                note="",
            )
            session.add(row)
            session.flush()
            tx.append(
                actor,
                "registry.publish",
                f"{row.agent}@v{row.version}",
                {"digest": digest, "state": "pending"},
            )
            return _version_of(row)

    def change(
        self, verb: str, principal: Principal, agent: str, version: str | int, note: str = ""
    ) -> AgentVersion:
        """Approve, reject, deprecate or yank one version (see :data:`TRANSITIONS`)."""
        allowed_from, target = TRANSITIONS[verb]
        current = self.version(agent, version)
        self.policy.require(
            principal,
            REGISTRY_ACTIONS[verb],
            agent_resource(agent, current.publisher, current.version),
        )
        now = self.clock()
        with self.audit.transaction() as tx, tx.session() as session:
            row = session.scalars(
                select(RegistryVersion)
                .where(RegistryVersion.agent == agent)
                .where(RegistryVersion.version == current.version)
                .with_for_update()
            ).one()
            if row.state not in allowed_from:
                raise RegistryConflict(
                    f"{agent}@v{row.version} is {row.state}; only a version that is "
                    f"{' or '.join(sorted(allowed_from))} can be {target}",
                    hint=f"see `orchestra registry show {agent}` for its versions",
                )
            before = row.state
            row.state, row.changed_by, row.changed_at, row.note = target, principal.id, now, note
            if verb in ("approve", "reject"):
                row.reviewed_by, row.reviewed_at = principal.id, now
            session.flush()
            tx.append(
                principal.actor,
                f"registry.{verb}",
                f"{agent}@v{row.version}",
                {"from": before, "to": target, "note": note},
            )
            return _version_of(row)

    def approve(
        self, principal: Principal, agent: str, version: str | int, note: str = ""
    ) -> AgentVersion:
        """Approve a pending version (a lead or an admin): it becomes the served one."""
        return self.change("approve", principal, agent, version, note)

    def reject(
        self, principal: Principal, agent: str, version: str | int, note: str = ""
    ) -> AgentVersion:
        """Reject a pending version (a lead or an admin): it is never served."""
        return self.change("reject", principal, agent, version, note)

    def deprecate(
        self, principal: Principal, agent: str, version: str | int, note: str = ""
    ) -> AgentVersion:
        """Deprecate an approved version: still served, with a warning."""
        return self.change("deprecate", principal, agent, version, note)

    def yank(
        self, principal: Principal, agent: str, version: str | int, note: str = ""
    ) -> AgentVersion:
        """Yank a version: it is never served again."""
        return self.change("yank", principal, agent, version, note)


def _summary(agent: str, versions: list[AgentVersion]) -> AgentSummary:
    served = next((v for v in reversed(versions) if v.state in SERVED_STATES), None)
    return AgentSummary(agent, served, versions[-1])


def definition_of(version: AgentVersion) -> AgentDefinition:
    """The parsed definition of a stored version."""
    return validate_definition(version.definition, f"registry:{version.label}")
