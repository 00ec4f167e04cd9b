"""The values a policy decision is made of: who asks, on what, and the answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from orchestra.errors import PolicyError

PrincipalKind = Literal["developer", "service", "anonymous"]

_EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True)
class Principal:
    """Who asks: a developer, a scoped service key, or nobody known."""

    kind: PrincipalKind
    id: str
    """The developer's name, or the key's id (``anonymous`` for nobody)."""
    roles: frozenset[str] = frozenset()
    """``admin``, ``lead``, ``developer``, ``viewer`` (Cedar ``Role`` parents)."""
    unit: str | None = None
    """The developer's unit: its name, or its path in the tree (``eng/payments/squad-a``;
    the last part is the unit). Policies on a unit apply to the units under it."""
    lead_of: tuple[str, ...] = ()
    """Units (names or paths) where this principal is a scoped lead."""
    regions: tuple[str, ...] = ()
    """Regions whose models this principal may use; empty: no restriction."""
    scopes: frozenset[str] = frozenset()
    """A service key's scopes (the actions it may take); empty for developers."""

    @classmethod
    def anonymous(cls) -> Principal:
        """Nobody authenticated."""
        return cls(kind="anonymous", id="anonymous")

    @property
    def actor(self) -> str:
        """How the audit log names this principal: ``developer:alice``, ``key:k_12``."""
        if self.kind == "anonymous":
            return "anonymous"
        return f"{'key' if self.kind == 'service' else 'developer'}:{self.id}"


@dataclass(frozen=True)
class Resource:
    """What the request is about: an entity of Orchestra's Cedar schema."""

    type: str
    """A Cedar entity type: ``Model``, ``Repository``, ``Agent``, ``Budget``, ``Unit`` ..."""
    id: str
    attrs: Mapping[str, object] = field(default_factory=lambda: _EMPTY)
    """The entity's attributes, as the schema declares them (``Model``: ``provider``,
    ``region``, ``tier``; ``Repository``: ``tags`` ...)."""
    parents: tuple[tuple[str, str], ...] = ()
    """Parent entities as ``(type, id)``: a ``Budget`` in its ``Unit``, a ``Run`` in its
    ``Repository``; a ``Unit`` or ``Developer`` resource gets its tree from the engine."""

    @property
    def label(self) -> str:
        """``Model::"claude-sonnet"``, as Cedar writes it."""
        return f'{self.type}::"{self.id}"'


@dataclass(frozen=True)
class Decision:
    """A policy decision and what made it."""

    allowed: bool
    policy_ids: tuple[str, ...]
    """The policies that decided: the forbids that refused, or the permits that allowed.
    Empty when nothing permitted (a refusal by default)."""
    reasons: tuple[str, ...] = ()
    """Human-readable, bounded: what refused or allowed, for the user and the auditor."""
    version: str = ""
    """The policy set's version (a digest of its files) the decision was made with."""

    @property
    def refused_by(self) -> str:
        """The deciding policy ids as one string (``default-deny`` when none decided)."""
        return ", ".join(self.policy_ids) or "default-deny"


class PolicyDenied(PolicyError):
    """A policy refused the request (HTTP 403, ``permission_error``)."""

    status = 403
    error_type = "permission_error"

    def __init__(
        self, message: str, *, decision: Decision, action: str, hint: str | None = None
    ) -> None:
        super().__init__(
            message,
            hint=hint
            or "ask an admin to change the policies (`orchestra policy check` shows them); "
            f"the deciding policies: {decision.refused_by}",
        )
        self.decision = decision
        self.action = action
