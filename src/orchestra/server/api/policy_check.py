"""The API's authoriser: the role table first, then the Cedar policies for the actions
their schema knows — a refusal by a policy is audited with its policy ids
(:meth:`orchestra.policy.PolicyEngine.require`) and answers 403 naming them.

The resource of a check is the unit it concerns (a lead's scoped actions), else the
organisation; an action whose schema applies to neither (``cancel_run`` takes a ``Run``)
is decided by the role table alone here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from orchestra.config.schema import OrchestraConfig
from orchestra.identity import ACTIONS, ANY_UNIT, Identity, NotAllowed, RoleAuthorizer
from orchestra.policy import DecisionAudit, PolicyEngine, Principal, Resource

log = logging.getLogger("orchestra.server")


def policy_principal(identity: Identity) -> Principal:
    """The policy seam's principal for an authenticated identity."""
    p = identity.principal
    kind: Literal["developer", "service", "anonymous"] = (
        "service" if p.kind == "service" else "anonymous" if p.kind == "anonymous" else "developer"
    )
    return Principal(
        kind=kind,
        id=p.id,
        roles=p.roles,
        unit=p.unit,
        lead_of=p.lead_of,
        regions=p.regions,
        scopes=identity.scopes or frozenset(),
    )


class PolicyAuthorizer:
    """Roles and scopes (:class:`RoleAuthorizer`), then Cedar (rebuilt on each reload)."""

    def __init__(
        self,
        config: Callable[[], OrchestraConfig],
        *,
        audit: DecisionAudit | None,
        base_dir: Path | None = None,
    ) -> None:
        self._config = config
        self._audit = audit
        self._base_dir = base_dir
        self._roles = RoleAuthorizer()
        self._built_for: OrchestraConfig | None = None
        self._engine: PolicyEngine | None = None

    def engine(self) -> PolicyEngine:
        """The policy engine of the configuration in force."""
        config = self._config()
        if self._engine is None or self._built_for is not config:
            self._engine = PolicyEngine.from_config(
                config, base_dir=self._base_dir, audit=self._audit
            )
            self._built_for = config
        return self._engine

    def require(self, identity: Identity, action: str, unit: str | None = None) -> None:
        """Raise unless the role table and the policies both allow ``action``; a refusal
        by either is audited (``role.deny`` naming the rule, ``policy.deny`` its ids)."""
        try:
            self._roles.require(identity, action, unit)
        except NotAllowed as refused:
            self._audit_role_refusal(identity, action, unit, refused)
            raise
        spec = ACTIONS[action]
        if unit == ANY_UNIT and spec.unit_scoped:
            return  # the handler checks again with the unit it concerns
        engine = self.engine()
        if action not in engine.bundle.actions:
            return
        resource = self._resource(engine, action, None if unit == ANY_UNIT else unit)
        if resource is not None:
            engine.require(policy_principal(identity), action, resource)

    def _audit_role_refusal(
        self, identity: Identity, action: str, unit: str | None, refused: NotAllowed
    ) -> None:
        if self._audit is None:
            return
        details: dict[str, Any] = {
            "decision": "deny",
            "rule": refused.rule or f"roles:{action}",
            "roles": sorted(identity.principal.roles),
            "unit": None if unit == ANY_UNIT else unit,
            "via": identity.via,
        }
        try:
            self._audit.append(identity.actor, "role.deny", action, details)
        except Exception as exc:  # the audit's own errors are its own; the refusal stands
            log.error("cannot audit the refusal of %s to %s: %s", action, identity.actor, exc)

    def _resource(self, engine: PolicyEngine, action: str, unit: str | None) -> Resource | None:
        applies = _resource_types(engine, action)
        if unit is not None and "Unit" in applies:
            return Resource("Unit", unit.rsplit("/", 1)[-1])
        if "Organisation" in applies:
            return Resource("Organisation", self._config().organisation.name)
        return None


def _resource_types(engine: PolicyEngine, action: str) -> list[str]:
    actions: dict[str, Any] = engine.bundle.schema_json.get("", {}).get("actions", {})
    applies = actions.get(action, {}).get("appliesTo", {})
    return list(applies.get("resourceTypes", []))
