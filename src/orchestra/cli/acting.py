"""Who a command acts as, and whether that developer may.

The CLI's identity is the configured developer (a command's ``--as``, else
``$ORCHESTRA_DEVELOPER``, else ``identity.cli_developer``, else the organisation's only
developer) — never the OS user; :func:`acting_identity` is the one place it is resolved.
Their role is checked against the command's action, as the API checks its endpoints.
"""

from __future__ import annotations

from orchestra.config import OrchestraConfig
from orchestra.identity import Identity, IdentityDirectory, RoleAuthorizer


def acting_identity(config: OrchestraConfig, override: str | None = None) -> Identity:
    """The developer the CLI acts as (``override``: a command's ``--as``); raises
    :class:`orchestra.identity.NotAuthenticated` when none is known or configured."""
    return IdentityDirectory(config).cli_identity(name=override)


def acting_as(config: OrchestraConfig, action: str, unit: str | None = None) -> str:
    """The audit actor for ``action`` (on the unit named ``unit``), once allowed; raises
    :class:`orchestra.identity.NotAllowed` or ``NotAuthenticated`` otherwise."""
    directory = IdentityDirectory(config)
    identity = directory.cli_identity()
    RoleAuthorizer().require(identity, action, directory.unit_path(unit))
    return identity.actor


def acting_on_budget(config: OrchestraConfig, scope: str, subject: str) -> str:
    """The actor changing a budget of ``scope``/``subject``, once allowed."""
    directory = IdentityDirectory(config)
    identity = directory.cli_identity()
    RoleAuthorizer().require(identity, "change_budget", directory.budget_unit(scope, subject))
    return identity.actor
