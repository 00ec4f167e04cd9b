"""``/api/v1/auth``: the web login (OpenID Connect code flow with PKCE), logout.

``login`` sends the browser to the provider with a fresh state, nonce and PKCE verifier,
kept in a signed, short-lived cookie; ``callback`` checks the state, trades the code for
tokens, checks the ID token (issuer, audience = the client, nonce, expiry, signature) and
sets the session cookie; ``logout`` ends the session and names the provider's logout URL.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import RedirectResponse

from orchestra.identity import COOKIE, OIDCClient, TokenRefused
from orchestra.server.api.context import NotConfigured
from orchestra.server.api.endpoint import PREFIX, Call, Endpoint

LOGIN_COOKIE = "orchestra_login"
LOGIN_TTL_S = 600


class LoginQuery(BaseModel):
    """Where to go after logging in (a path on this server)."""

    model_config = ConfigDict(extra="forbid")
    next: str = Field(default="/", max_length=500, pattern=r"^/([^/\s\\][^\s\\]*)?$")


class CallbackQuery(BaseModel):
    """What the provider sends back."""

    model_config = ConfigDict(extra="ignore")
    code: str | None = Field(default=None, max_length=2000)
    state: str | None = Field(default=None, max_length=500)
    iss: str | None = Field(default=None, max_length=500)
    error: str | None = Field(default=None, max_length=200)


class LoggedOut(BaseModel):
    """The session ended; ``end_session_url`` also ends the provider's session."""

    logged_out: bool
    end_session_url: str | None


def _oidc(call: Call[Any, Any]) -> OIDCClient:
    if call.ctx.oidc is None:
        raise NotConfigured(
            "single sign-on is not configured", hint="set identity.oidc in orchestra.yaml"
        )
    return call.ctx.oidc


def _redirect_uri(call: Call[Any, Any]) -> str:
    return str(call.request.base_url).rstrip("/") + PREFIX + "/auth/callback"


async def _login(call: Call[LoginQuery, Any]) -> RedirectResponse:
    url, state = await _oidc(call).authorization_url(_redirect_uri(call))
    assert call.ctx.sessions is not None
    sealed = call.ctx.sessions.seal({**state, "next": call.query.next})
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        LOGIN_COOKIE,
        sealed,
        max_age=LOGIN_TTL_S,
        httponly=True,
        samesite="lax",
        secure=call.request.url.scheme == "https",
        path=PREFIX + "/auth",
    )
    return response


async def _callback(call: Call[CallbackQuery, Any]) -> RedirectResponse:
    oidc = _oidc(call)
    q = call.query
    if q.error:
        raise TokenRefused(f"the provider refused the login: {q.error}", reason="login")
    if q.iss is not None and q.iss.rstrip("/") != oidc.issuer:
        raise TokenRefused(f"the login answer comes from issuer {q.iss!r}", reason="issuer")
    sealed = call.request.cookies.get(LOGIN_COOKIE)
    if not sealed or not q.code or not q.state:
        raise TokenRefused(
            "no login in progress (state cookie, code or state missing)",
            hint="start at /api/v1/auth/login",
            reason="state",
        )
    assert call.ctx.sessions is not None
    kept = call.ctx.sessions.unseal(sealed)
    if kept.get("state") != q.state:
        raise TokenRefused("the login state does not match", reason="state")
    tokens = await oidc.exchange(q.code, _redirect_uri(call), kept["verifier"])
    id_token = str(tokens.get("id_token", ""))
    claims = await oidc.verify(id_token, audience=oidc.settings.client_id, nonce=kept["nonce"])
    identity = call.ctx.directory.from_claims(claims, via="session")
    exp = claims.get("exp")
    cookie, end = call.ctx.sessions.issue(
        identity, token_expiry=float(exp) if isinstance(exp, int | float) else None
    )
    await call.blocking(
        call.ctx.accounting().audit.append,
        identity.actor,
        "auth.login",
        identity.actor,
        {"roles": sorted(identity.principal.roles), "unit": identity.principal.unit},
    )
    response = RedirectResponse(kept.get("next", "/"), status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=max(1, int(end - call.ctx.now())),
        httponly=True,
        samesite="lax",
        secure=call.request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX + "/auth")
    return response


async def _logout(call: Call[Any, Any]) -> Any:
    assert call.ctx.sessions is not None
    call.ctx.share_logouts()
    await call.blocking(call.ctx.sessions.revoke, call.identity)
    end = await call.ctx.oidc.end_session_url() if call.ctx.oidc is not None else None
    from starlette.responses import JSONResponse

    response = JSONResponse(LoggedOut(logged_out=True, end_session_url=end).model_dump())
    response.delete_cookie(COOKIE, path="/")
    return response


ENDPOINTS = [
    Endpoint(
        "GET",
        "/auth/login",
        None,
        _login,
        "Start the web login (redirect to the provider)",
        None,
        query=LoginQuery,
        status=302,
        public=True,
        tag="auth",
        statuses=(400, 404),
    ),
    Endpoint(
        "GET",
        "/auth/callback",
        None,
        _callback,
        "The provider's answer: check it and start a session",
        None,
        query=CallbackQuery,
        status=303,
        public=True,
        tag="auth",
        statuses=(400, 401, 404),
    ),
    Endpoint(
        "POST", "/auth/logout", "whoami", _logout, "End the login session", LoggedOut, tag="auth"
    ),
]
