"""Who asks: the authenticated identity every endpoint and mutating command checks.

:class:`Principal` has the shape of the policy seam's (``orchestra.policy.Principal``, see
docs/sso.md): kind, id, roles, unit, the units it leads, regions. :class:`Identity` adds
how it was established and, for a service key, the actions it is scoped to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("admin", "lead", "developer", "viewer")
"""Every role, strongest first."""


@dataclass(frozen=True)
class Principal:
    """Who asks."""

    kind: str
    """``developer``, ``service`` (a scoped service key) or ``anonymous``."""
    id: str
    """The developer's name, or the service key's id."""
    roles: frozenset[str] = frozenset()
    unit: str | None = None
    """The developer's unit path in the organisation tree, e.g. ``eng/payments/squad-a``."""
    lead_of: tuple[str, ...] = ()
    """Unit paths this principal leads (a lead scoped to those units)."""
    regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Identity:
    """A :class:`Principal` and how it was authenticated."""

    principal: Principal
    via: str
    """``key`` (a gateway key), ``oidc`` (a bearer token), ``session`` (the web login),
    ``cli`` (the configured developer) or ``none``."""
    scopes: frozenset[str] | None = None
    """For a service key: the only actions it may take. ``None``: its roles decide."""
    credential_id: str | None = None
    """The key id, token ``jti`` or session id (for the audit, never the secret)."""
    claims: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def actor(self) -> str:
        """The audit log's actor: ``developer:alice``, ``service:k_123``, ``anonymous``."""
        p = self.principal
        return "anonymous" if p.kind == "anonymous" else f"{p.kind}:{p.id}"


ANONYMOUS = Identity(Principal(kind="anonymous", id="anonymous"), via="none")
