"""Who asks: authentication (gateway keys, OpenID Connect, web sessions) and roles.

Every API endpoint and every mutating CLI command turns its caller into an
:class:`Identity` and asks an :class:`Authorizer` whether it may take the endpoint's
action (:data:`ACTIONS`). See docs/sso.md and docs/api.md.
"""

from __future__ import annotations

from orchestra.identity.actions import (
    ACTIONS,
    ANY_UNIT,
    Action,
    Authorizer,
    RoleAuthorizer,
    register_action,
    unit_within,
)
from orchestra.identity.directory import DEVELOPER_ENV, IdentityDirectory
from orchestra.identity.errors import (
    IdentityUnavailable,
    NotAllowed,
    NotAuthenticated,
    TokenRefused,
)
from orchestra.identity.oidc import OIDCClient, looks_like_jwt, token_header
from orchestra.identity.principal import ANONYMOUS, ROLES, Identity, Principal
from orchestra.identity.revocations import SessionRevocations
from orchestra.identity.sessions import (
    COOKIE,
    SESSION_SECRET_ENV,
    SessionSigner,
    load_session_secret,
)

__all__ = [
    "ACTIONS",
    "ANONYMOUS",
    "ANY_UNIT",
    "COOKIE",
    "DEVELOPER_ENV",
    "ROLES",
    "SESSION_SECRET_ENV",
    "Action",
    "Authorizer",
    "Identity",
    "IdentityDirectory",
    "IdentityUnavailable",
    "NotAllowed",
    "NotAuthenticated",
    "OIDCClient",
    "Principal",
    "RoleAuthorizer",
    "SessionRevocations",
    "SessionSigner",
    "TokenRefused",
    "load_session_secret",
    "looks_like_jwt",
    "register_action",
    "token_header",
    "unit_within",
]
