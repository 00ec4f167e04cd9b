"""The policy engine: Cedar decisions over Orchestra's entities, cached and audited.

One :class:`PolicyEngine` holds one validated policy set at a time (a snapshot: the
set, the organisation's entities and a decision cache). :meth:`PolicyEngine.reload`
builds a new snapshot and swaps it in whole; when the new files have a problem, the
old snapshot stays in force and the failure is logged and audited.

Decisions are cached per snapshot, keyed by everything the decision reads (principal,
action, resource with its attributes, context): a reload, an organisation change or a
new setting makes a new snapshot and so a new cache, and nothing else changes a decision.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cedarpy

from orchestra.config import OrchestraConfig, OrganisationSection
from orchestra.policy.model import Decision, PolicyDenied, Principal, Resource
from orchestra.policy.sources import (
    PolicyBundle,
    PolicyInvalid,
    load_bundle,
    policy_files,
)

log = logging.getLogger("orchestra.policy")

MAX_REASONS = 5


class DecisionAudit(Protocol):
    """Where decisions are recorded: :class:`orchestra.accounting.AuditLog` fits."""

    def append(
        self, actor: str, action: str, target: str, details: dict[str, Any] | None = None
    ) -> object:
        """Record one entry."""
        ...


@dataclass(frozen=True)
class PolicySource:
    """Where a policy set comes from: re-read by every reload."""

    folder: Path | None = None
    default: str = "permit"
    schema_files: tuple[Path, ...] = ()
    org: OrganisationSection | None = None

    @classmethod
    def from_config(cls, config: OrchestraConfig, *, base_dir: Path | None = None) -> PolicySource:
        """The source ``orchestra.yaml`` describes; a relative folder is under ``base_dir``."""
        folder: Path | None = None
        if config.policies.folder is not None:
            folder = Path(config.policies.folder).expanduser()
            if not folder.is_absolute() and base_dir is not None:
                folder = base_dir / folder
        schema_files = tuple(sorted(folder.rglob("*.cedarschema.json"))) if folder else ()
        return cls(folder, config.policies.default, schema_files, config.organisation)

    def load(self) -> PolicyBundle:
        """Read and validate the whole set; raises :class:`PolicyInvalid`."""
        if self.folder is not None and not self.folder.is_dir():
            from orchestra.policy.sources import PolicyProblem

            raise PolicyInvalid(
                [PolicyProblem(str(self.folder), 1, 1, "the policies folder does not exist")]
            )
        known: dict[str, list[str]] = {}
        if self.org is not None:
            known["Unit"] = [u.name for u in self.org.units]
            known["Developer"] = [d.name for d in self.org.developers]
        return load_bundle(
            policy_files(self.folder, default=self.default),
            schema_files=self.schema_files,
            known=known,
            settings=f"default={self.default}",
        )


@dataclass(frozen=True)
class _Snapshot:
    bundle: PolicyBundle
    entities: cedarpy.Entities
    base_uids: frozenset[tuple[str, str]]
    unit_parents: Mapping[str, str | None]
    cache: dict[tuple[object, ...], Decision]


class PolicyEngine:
    """Decide, and enforce, what a principal may do; every refusal audited.

    ``audit``: where refusals (and, with ``audit_permits``, the permits of
    :meth:`require`) are recorded, with the deciding policy ids and the actor.
    """

    def __init__(
        self,
        source: PolicySource,
        *,
        audit: DecisionAudit | None = None,
        audit_permits: bool = False,
        cache_size: int = 4096,
    ) -> None:
        self._source = source
        self._audit = audit
        self.audit_permits = audit_permits
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._snapshot = self._build(source)

    @classmethod
    def from_config(
        cls,
        config: OrchestraConfig,
        *,
        base_dir: Path | None = None,
        audit: DecisionAudit | None = None,
    ) -> PolicyEngine:
        """The engine ``orchestra.yaml``'s ``policies`` section describes."""
        return cls(
            PolicySource.from_config(config, base_dir=base_dir),
            audit=audit,
            audit_permits=config.policies.audit_permits,
            cache_size=config.policies.cache_size,
        )

    @property
    def version(self) -> str:
        """The version of the policy set in force (changes with any file or setting)."""
        return self._snapshot.bundle.version

    @property
    def bundle(self) -> PolicyBundle:
        """The validated policy set in force."""
        return self._snapshot.bundle

    # -- deciding ---------------------------------------------------------------------

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: Mapping[str, object] | None = None,
    ) -> Decision:
        """The decision, without auditing it (see :meth:`require` and :meth:`record`)."""
        snap = self._snapshot
        key = (
            principal,
            action,
            resource.type,
            resource.id,
            _frozen(resource.attrs),
            resource.parents,
            _frozen(context),
        )
        cached = snap.cache.get(key)
        if cached is not None:
            return cached
        decision = self._evaluate(snap, principal, action, resource, context)
        if self.cache_size:
            with self._lock:
                if len(snap.cache) >= self.cache_size:
                    snap.cache.pop(next(iter(snap.cache)))
                snap.cache[key] = decision
        return decision

    def require(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: Mapping[str, object] | None = None,
    ) -> Decision:
        """The decision when allowed; else audit the refusal and raise :class:`PolicyDenied`."""
        decision = self.decide(principal, action, resource, context)
        if decision.allowed:
            if self.audit_permits:
                self.record(principal, action, resource, decision)
            return decision
        self.record(principal, action, resource, decision)
        raise self.denied(principal, action, resource, decision)

    def denied(
        self, principal: Principal, action: str, resource: Resource, decision: Decision
    ) -> PolicyDenied:
        """The error for a refusal (not audited: :meth:`require` audits, or call :meth:`record`)."""
        why = f": {decision.reasons[0]}" if decision.reasons else ""
        return PolicyDenied(
            f"{principal.actor} may not {action} on {resource.label} "
            f"(refused by {decision.refused_by}){why}",
            decision=decision,
            action=action,
        )

    def record(
        self, principal: Principal, action: str, resource: Resource, decision: Decision
    ) -> None:
        """Audit a decision: ``policy.permit``/``policy.deny`` with its policy ids and actor.

        A failing audit log is logged, never raised: the decision stands either way.
        """
        if self._audit is None:
            return
        details: dict[str, Any] = {
            "decision": "permit" if decision.allowed else "deny",
            "policy_ids": list(decision.policy_ids) or ["default-deny"],
            "reasons": list(decision.reasons),
            "policy_version": decision.version,
            "roles": sorted(principal.roles),
            "unit": principal.unit,
        }
        kind = "policy.permit" if decision.allowed else "policy.deny"
        try:
            self._audit.append(principal.actor, kind, f"{action} {resource.label}", details)
        except Exception as exc:  # the audit's own errors are its own; the decision stands
            log.error("cannot audit the %s of %s on %s: %s", kind, action, resource.label, exc)

    # -- reloading --------------------------------------------------------------------

    def reload(self, source: PolicySource | None = None, *, actor: str = "system") -> str:
        """Re-read the policies (from ``source`` when given); returns the new version.

        All or nothing: on a problem the set in force stays, the failure is logged and
        audited (``policy.reload_failed``), and :class:`PolicyInvalid` is raised.
        """
        source = source or self._source
        old = self._snapshot.bundle.version
        try:
            snapshot = self._build(source)
        except PolicyInvalid as exc:
            log.error("policy reload refused; version %s stays in force:\n%s", old, exc)
            if self._audit is not None:
                self._audit.append(
                    actor,
                    "policy.reload_failed",
                    "policies",
                    {"in_force": old, "problems": [str(p) for p in exc.problems][:20]},
                )
            raise
        self._source, self._snapshot = source, snapshot
        if self._audit is not None and snapshot.bundle.version != old:
            self._audit.append(
                actor,
                "policy.reload",
                "policies",
                {"from": old, "to": snapshot.bundle.version, "files": list(snapshot.bundle.files)},
            )
        return snapshot.bundle.version

    # -- principals from the organisation ----------------------------------------------

    def principal_for_developer(self, name: str) -> Principal | None:
        """The principal of a developer of ``orchestra.yaml``'s organisation, or ``None``."""
        org = self._source.org
        if org is None:
            return None
        dev = next((d for d in org.developers if d.name == name), None)
        if dev is None:
            return None
        return Principal(
            kind="developer",
            id=dev.name,
            roles=frozenset({dev.role}),
            unit=dev.unit,
            lead_of=(dev.unit,) if dev.role == "lead" and dev.unit else (),
            regions=allowed_regions(org, dev.unit, dev.regions),
        )

    def developer_names(self) -> list[str]:
        """The developers of the organisation the policies were loaded with."""
        org = self._source.org
        return sorted(d.name for d in org.developers) if org is not None else []

    # -- internals --------------------------------------------------------------------

    def _build(self, source: PolicySource) -> _Snapshot:
        bundle = source.load()
        org = source.org
        parents: dict[str, str | None] = {}
        entities: list[dict[str, Any]] = [
            _entity("Role", r) for r in ("admin", "lead", "developer", "viewer")
        ]
        org_uid = ("Organisation", org.name if org is not None else "organisation")
        entities.append(_entity(*org_uid))
        if org is not None:
            for unit in org.units:
                parents[unit.name] = unit.parent
                up = [("Unit", unit.parent)] if unit.parent else [org_uid]
                entities.append(
                    _entity("Unit", unit.name, {"kind": unit.kind, "regions": unit.regions}, up)
                )
        uids = frozenset((e["uid"]["type"], e["uid"]["id"]) for e in entities)
        return _Snapshot(
            bundle,
            cedarpy.Entities.from_json_str(json.dumps(entities)),
            uids,
            parents,
            {},
        )

    def _evaluate(
        self,
        snap: _Snapshot,
        principal: Principal,
        action: str,
        resource: Resource,
        context: Mapping[str, object] | None,
    ) -> Decision:
        version = snap.bundle.version
        if action not in snap.bundle.actions:
            return Decision(False, (), (f"unknown action {action!r}",), version)
        delta = self._request_entities(snap, principal, resource)
        entities = snap.entities.with_added_json_str(json.dumps(delta)) if delta else snap.entities
        request = {
            "principal": {"type": _principal_type(principal), "id": principal.id},
            "action": {"type": "Action", "id": action},
            "resource": {"type": resource.type, "id": resource.id},
            "context": dict(context or {}),
        }
        result = cedarpy.is_authorized(request, snap.bundle.policies, entities)
        ids = tuple(sorted(result.diagnostics.reasons))
        errors = tuple(str(e) for e in result.diagnostics.errors)
        if errors:
            # Cedar skips a policy it cannot evaluate; a forbid skipped must not let the
            # request through, so an evaluation error refuses.
            return Decision(False, ids, tuple(errors[:MAX_REASONS]), version)
        if result.allowed:
            return Decision(True, ids, (f"permitted by {', '.join(ids)}",), version)
        if ids:
            return Decision(False, ids, (f"forbidden by {', '.join(ids)}",), version)
        return Decision(False, (), ("no policy permits it (policies.default is deny)",), version)

    def _request_entities(
        self, snap: _Snapshot, principal: Principal, resource: Resource
    ) -> list[dict[str, Any]]:
        """The principal and the resource, and any unit of theirs the tree lacks."""
        added: dict[tuple[str, str], dict[str, Any]] = {}
        unit = self._unit_uid(snap, principal.unit, added)
        p_parents = [("Role", r) for r in sorted(principal.roles)]
        if unit is not None:
            p_parents.append(unit)
        p_type = _principal_type(principal)
        if principal.kind != "anonymous":
            added[(p_type, principal.id)] = _entity(
                p_type,
                principal.id,
                {
                    "kind": principal.kind,
                    "regions": list(principal.regions),
                    "region_limited": bool(principal.regions),
                    "scopes": sorted(principal.scopes),
                    "lead_of": [
                        {"__entity": {"type": "Unit", "id": uid[1]}}
                        for u in principal.lead_of
                        if (uid := self._unit_uid(snap, u, added)) is not None
                    ],
                },
                p_parents,
            )
        else:
            added[("Anonymous", principal.id)] = _entity(
                "Anonymous",
                principal.id,
                {
                    "kind": "anonymous",
                    "regions": [],
                    "region_limited": False,
                    "scopes": [],
                    "lead_of": [],
                },
            )
        r_uid = (resource.type, resource.id)
        if r_uid not in added and r_uid not in snap.base_uids:
            added[r_uid] = _entity(
                resource.type, resource.id, dict(resource.attrs), list(resource.parents)
            )
        return [e for uid, e in added.items() if uid not in snap.base_uids]

    def _unit_uid(
        self, snap: _Snapshot, unit: str | None, added: dict[tuple[str, str], dict[str, Any]]
    ) -> tuple[str, str] | None:
        """A unit given by name or path; a path's units the tree lacks are added, chained."""
        if not unit:
            return None
        parts = [p for p in unit.split("/") if p]
        parent: tuple[str, str] | None = None
        for part in parts:
            uid = ("Unit", part)
            if uid not in snap.base_uids and uid not in added:
                up = [parent] if parent else []
                added[uid] = _entity("Unit", part, {"kind": "unit", "regions": []}, up)
            parent = uid
        return parent


def allowed_regions(
    org: OrganisationSection, unit: str | None, own: list[str] | tuple[str, ...] = ()
) -> tuple[str, ...]:
    """The regions a developer of ``unit`` may use: every list on the way up intersected.

    A unit's regions hold for everything under it (a squad cannot leave its tribe's
    regions); an empty list restricts nothing. ``()``: no restriction at all; a
    restriction whose lists share no region is ``("",)`` (no model's region matches).
    """
    units = {u.name: u for u in org.units}
    lists = [list(own)] if own else []
    seen: set[str] = set()
    while unit is not None and unit in units and unit not in seen:
        seen.add(unit)
        if units[unit].regions:
            lists.append(units[unit].regions)
        unit = units[unit].parent
    if not lists:
        return ()
    common = set(lists[0]).intersection(*lists[1:])
    return tuple(sorted(common)) or ("",)


def _principal_type(principal: Principal) -> str:
    return {"developer": "Developer", "service": "Key"}.get(principal.kind, "Anonymous")


def _entity(
    kind: str,
    entity_id: str,
    attrs: Mapping[str, Any] | None = None,
    parents: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "uid": {"type": kind, "id": entity_id},
        "attrs": dict(attrs or {}),
        "parents": [{"type": t, "id": i} for t, i in parents or []],
    }


def _frozen(value: Mapping[str, object] | None) -> str:
    if not value:
        return ""
    return json.dumps(value, sort_keys=True, default=sorted)
