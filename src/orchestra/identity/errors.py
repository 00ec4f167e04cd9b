"""The identity layer's refusals: each names what was wrong and what to do."""

from __future__ import annotations

from orchestra.errors import IdentityError


class NotAuthenticated(IdentityError):
    """No credential came with a request that needs one."""

    status = 401


class TokenRefused(IdentityError):
    """A credential came but is not acceptable (wrong issuer, audience, algorithm, expired)."""

    status = 401

    def __init__(self, message: str, *, hint: str | None = None, reason: str = "invalid") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
        """A short machine-readable cause: ``issuer``, ``audience``, ``algorithm``,
        ``expired``, ``signature``, ``malformed``, ``unknown_key``, ``revoked``."""


class NotAllowed(IdentityError):
    """The identity is known but its roles or scopes do not permit the action."""

    status = 403

    def __init__(self, message: str, *, hint: str | None = None, rule: str = "") -> None:
        super().__init__(message, hint=hint)
        self.rule = rule
        """The rule of the role table that refused, for the audit log: ``roles:<action>``
        (no role held grants it), ``scopes:<action>`` (a service key not scoped to it),
        ``lead_of:<action>`` (outside the units a scoped lead leads), ``unknown-action``."""


class IdentityUnavailable(IdentityError):
    """The OpenID provider could not be reached or answered nonsense."""

    status = 503
