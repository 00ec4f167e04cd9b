"""The policy decision seam as the registry uses it.

The shape is ``orchestra.policy``'s (``Principal``, ``Resource``, ``Decision``,
``PolicyEngine.require``). Until that package is merged here, the registry codes against
the :class:`PolicyDecider` protocol and ships :class:`RolePolicy`, a decider with the
same contract (decide, audit a refusal with the deciding policy id, raise) whose rules are
the roles the issue names: a lead or an admin approves; a developer may publish.
Any object with a matching ``require`` (the Cedar engine) can replace it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestra.accounting import AuditLog
from orchestra.org import OrgTree
from orchestra.registry.errors import ApprovalRefused, UnknownUnit, close_matches

OFFICIAL_PUBLISHER = "orchestra"
"""The publisher of the built-in agents."""


@dataclass(frozen=True)
class Principal:
    """Who asks (the policy seam's shape)."""

    kind: str
    """``developer``, ``service`` (a scoped service key) or ``anonymous``."""
    id: str
    roles: frozenset[str]
    unit: str | None = None
    lead_of: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resource:
    """What is acted on: a Cedar entity type of Orchestra's schema and its id."""

    type: str
    id: str
    attrs: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """A policy decision and the policies that made it."""

    allowed: bool
    policy_ids: tuple[str, ...]
    reasons: tuple[str, ...]


class PolicyDecider(Protocol):
    """What the registry needs of a policy engine."""

    def require(
        self,
        principal: Any,
        action: str,
        resource: Any,
        context: Mapping[str, object] | None = None,
    ) -> Any:
        """Return the decision when allowed; audit and raise (HTTP 403) when not."""
        ...


REGISTRY_ACTIONS: Mapping[str, tuple[str, frozenset[str]]] = {
    "publish_agent": ("registry-publish-by-members", frozenset({"admin", "lead", "developer"})),
    "approve_agent": ("registry-review-by-lead-or-admin", frozenset({"admin", "lead"})),
    "deprecate_agent": ("registry-retire-by-lead-or-admin", frozenset({"admin", "lead"})),
    "yank_agent": ("registry-retire-by-lead-or-admin", frozenset({"admin", "lead"})),
    "manage_agent_pool": ("registry-pools-by-lead-or-admin", frozenset({"admin", "lead"})),
}
"""Action -> (policy id, roles it permits). The Cedar schema needs these actions too."""


@dataclass
class RolePolicy:
    """A :class:`PolicyDecider` over roles alone: the registry's rules until Cedar decides.

    Refusals are appended to ``audit`` (action ``policy.deny``) with the policy id.
    """

    audit: AuditLog

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: Mapping[str, object] | None = None,
    ) -> Decision:
        """Allowed when one of the principal's roles is among those the action permits."""
        policy_id, roles = REGISTRY_ACTIONS.get(action, ("registry-default-deny", frozenset()))
        if principal.roles & roles:
            return Decision(True, (policy_id,), (f"{action} is permitted to {sorted(roles)}",))
        held = ", ".join(sorted(principal.roles)) or "no role"
        return Decision(
            False,
            (policy_id,),
            (
                f"{action} needs one of {', '.join(sorted(roles)) or 'no role'}; "
                f"{principal.id} has {held}",
            ),
        )

    def require(
        self,
        principal: Principal,
        action: str,
        resource: Resource,
        context: Mapping[str, object] | None = None,
    ) -> Decision:
        """The decision when allowed; otherwise audit it and raise :class:`ApprovalRefused`."""
        decision = self.decide(principal, action, resource, context)
        if decision.allowed:
            return decision
        self.audit.append(
            principal.id,
            "policy.deny",
            f"{resource.type}::{resource.id}",
            {
                "action": action,
                "policy_ids": list(decision.policy_ids),
                "reasons": list(decision.reasons),
            },
        )
        raise ApprovalRefused(
            f"{principal.id} may not {action.replace('_', ' ')} {resource.id!r}: "
            f"{decision.reasons[0]} (policy {', '.join(decision.policy_ids)})",
            hint="ask a lead or an admin of your unit to do it",
        )


def principal_for(tree: OrgTree | None, developer: str) -> Principal:
    """The principal of ``developer`` in the stored organisation (role, home unit).

    A lead is a lead of their home unit (and so, by inheritance, of the units under it).
    """
    known = tree.developers if tree is not None else ()
    found = next((d for d in known if d.name == developer), None)
    if found is None:
        close = close_matches(developer, [d.name for d in known])
        raise UnknownUnit(
            f"the organisation has no developer named {developer!r}",
            hint=f"did you mean {', '.join(close)}?"
            if close
            else "add them to orchestra.yaml and run `orchestra org sync`",
        )
    lead_of = (found.unit,) if found.role == "lead" and found.unit else ()
    return Principal("developer", found.name, frozenset({found.role}), found.unit, lead_of)


def official_principal() -> Principal:
    """The official publisher, which seeds the built-in agents."""
    return Principal("service", OFFICIAL_PUBLISHER, frozenset({"admin"}))
