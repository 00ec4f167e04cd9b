"""The actions of the API and the CLI, and which roles may take them.

Every endpoint and every mutating command names one action from :data:`ACTIONS`; the
route-table test fails for an endpoint without one. Other parts add their actions with
:func:`register_action` from their own module (the registry's ``approve_agent`` ...), so no
two branches edit one table.

A lead scoped to units (``Principal.lead_of``) takes a :data:`UNIT_SCOPED` action only on
a unit inside one it leads; an admin takes every action; a service key only the actions
it is scoped to (``identity.service_keys``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orchestra.identity.errors import NotAllowed, NotAuthenticated
from orchestra.identity.principal import ROLES, Identity


@dataclass(frozen=True)
class Action:
    """One thing a principal may be allowed to do."""

    name: str
    roles: frozenset[str]
    """Roles that may take it (admin always may)."""
    unit_scoped: bool = False
    """A scoped lead may take it only inside the units it leads."""
    mutating: bool = False
    """Changes state (audited)."""


WHOAMI = "whoami"
"""Asking who one is: open to every authenticated caller, whatever its roles or scopes."""

ANY_UNIT = "*"
"""The ``unit`` of a check made before the unit is known (an endpoint's own check): a scoped
lead passes it, and the handler checks the real unit once it has read the request."""

ACTIONS: dict[str, Action] = {}
"""Every action by name."""

_READERS = frozenset(ROLES)
_MEMBERS = frozenset({"admin", "lead", "developer"})
_LEADS = frozenset({"admin", "lead"})
_ADMINS = frozenset({"admin"})


def register_action(
    name: str, roles: frozenset[str], *, unit_scoped: bool = False, mutating: bool = False
) -> Action:
    """Add an action (idempotent for an identical definition)."""
    action = Action(name, roles | _ADMINS, unit_scoped=unit_scoped, mutating=mutating)
    existing = ACTIONS.get(name)
    if existing is not None and existing != action:
        raise ValueError(f"action {name} is already registered differently")
    ACTIONS[name] = action
    return action


for _name, _roles, _scoped, _mutating in (
    ("whoami", _READERS, False, False),
    ("read_runs", _READERS, False, False),
    ("start_run", _MEMBERS, False, True),
    ("cancel_run", _MEMBERS, False, True),
    ("read_org", _READERS, False, False),
    ("manage_org", _ADMINS, False, True),
    ("read_keys", _MEMBERS, False, False),
    ("manage_keys", _LEADS, True, True),
    ("read_budgets", _READERS, False, False),
    ("change_budget", _LEADS, True, True),
    ("read_spend", _READERS, False, False),
    ("read_audit", _LEADS, False, False),
    ("manage_audit", _ADMINS, False, True),
    ("read_policies", _READERS, False, False),
    ("check_policy", _MEMBERS, False, False),
    ("manage_policies", _ADMINS, False, True),
    ("reload_config", _ADMINS, False, True),
    ("manage_secrets", _ADMINS, False, True),
    # the merge queue; here, not in the API's module, so the CLI's `land`/`queue` check it too
    ("land", frozenset({"lead", "developer"}), False, True),
):
    register_action(_name, _roles, unit_scoped=_scoped, mutating=_mutating)


def unit_within(unit: str, ancestor: str) -> bool:
    """Whether unit path ``unit`` is ``ancestor`` or below it."""
    return unit == ancestor or unit.startswith(ancestor.rstrip("/") + "/")


class Authorizer(Protocol):
    """Decides whether an identity may take an action (the policy engine plugs in here)."""

    def require(self, identity: Identity, action: str, unit: str | None = None) -> None:
        """Return if allowed; raise :class:`NotAllowed` (or :class:`NotAuthenticated`)."""


class RoleAuthorizer:
    """The role table of :data:`ACTIONS`, with scoped leads and service-key scopes."""

    def require(self, identity: Identity, action: str, unit: str | None = None) -> None:
        """Raise unless ``identity`` may take ``action`` (on ``unit``, for scoped actions)."""
        spec = ACTIONS.get(action)
        if spec is None:
            raise NotAllowed(
                f"unknown action {action!r}",
                hint="actions are listed in docs/api.md",
                rule="unknown-action",
            )
        principal = identity.principal
        if principal.kind == "anonymous":
            raise NotAuthenticated(
                f"{action} needs an authenticated caller",
                hint="send a gateway key (x-api-key or Authorization: Bearer) or an OpenID "
                "Connect bearer token, or log in at /api/v1/auth/login",
            )
        if action == WHOAMI:
            return  # any authenticated caller may ask who it is
        if identity.scopes is not None:
            if action not in identity.scopes:
                raise NotAllowed(
                    f"service key {principal.id} is not scoped to {action} "
                    f"(its scopes: {', '.join(sorted(identity.scopes)) or 'none'})",
                    hint="add the action to its identity.service_keys entry, or use another key",
                    rule=f"scopes:{action}",
                )
            return
        granting = principal.roles & spec.roles
        if not granting:
            needed = ", ".join(r for r in ROLES if r in spec.roles)
            held = ", ".join(sorted(principal.roles)) or "no role"
            raise NotAllowed(
                f"{identity.actor} ({held}) may not {action}; it needs one of: {needed}",
                hint="ask an admin for the role, or for a service key scoped to it",
                rule=f"roles:{action}",
            )
        if granting == {"lead"} and spec.unit_scoped and principal.lead_of:
            _require_led_unit(identity, action, unit)


def _require_led_unit(identity: Identity, action: str, unit: str | None) -> None:
    led = identity.principal.lead_of
    if unit == ANY_UNIT:
        return
    if unit is not None and any(unit_within(unit, ancestor) for ancestor in led):
        return
    where = f"unit {unit}" if unit else "the whole organisation"
    raise NotAllowed(
        f"{identity.actor} leads {', '.join(led)} and may not {action} for {where}",
        hint="a scoped lead acts only inside the units it leads; ask an admin",
        rule=f"lead_of:{action}",
    )
