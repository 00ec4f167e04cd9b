"""Single sign-on against a real OpenID provider (npm ``oidc-provider`` on Node): the web
login (code flow with PKCE), logout and expiry; API bearer tokens with their group claims
mapped to roles and units; and the tokens that must be refused, each with the reason named."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.identity.conftest import api_context
from tests.identity.provider import Provider, log_in_at_provider, token_for
from tests.server.api.conftest import Api

pytestmark = pytest.mark.anyio


def _token(provider: Provider, account: str) -> str:
    cached = provider.tokens.get(account)
    if cached is None:
        cached = provider.tokens[account] = token_for(provider, account)
    return str(cached["access_token"])


def _claims(provider: Provider, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": provider.issuer,
        "aud": provider.audience,
        "sub": "mallory",
        "groups": ["eng-admins"],
        "iat": now,
        "exp": now + 300,
        **changes,
    }


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def _me(api: Api, token: str) -> httpx.Response:
    async with api.client(authorization=f"Bearer {token}") as client:
        return await client.get("/api/v1/me")


async def test_a_provider_token_authenticates_with_its_groups_mapped(
    sso: Api, provider: Provider
) -> None:
    response = await _me(sso, _token(provider, "lars"))
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["id"] == "lars@acme.test" and me["via"] == "oidc"
    assert me["roles"] == ["lead"]
    assert me["unit"] == "eng/payments" and me["lead_of"] == ["eng/payments"]


async def test_groups_decide_what_each_user_may_do(sso: Api, provider: Provider) -> None:
    budget = {"scope": "team", "subject": "squad-a", "cap_usd": "25"}
    org_budget = {"scope": "org", "subject": "*", "cap_usd": "25"}
    headers = {"authorization": f"Bearer {_token(provider, 'lars')}"}
    async with sso.client(**headers) as lead:
        inside = await lead.put("/api/v1/budgets/squad-a", json=budget)
        outside = await lead.put("/api/v1/budgets/everyone", json=org_budget)
    assert inside.status_code == 200, inside.text
    assert outside.status_code == 403
    assert "leads eng/payments" in outside.json()["error"]["message"]
    async with sso.client(authorization=f"Bearer {_token(provider, 'dora')}") as dev:
        refused = await dev.put("/api/v1/budgets/squad-a", json=budget)
        runs = await dev.get("/api/v1/runs")
    assert refused.status_code == 403 and "developer" in refused.json()["error"]["message"]
    assert runs.status_code == 200
    async with sso.client(authorization=f"Bearer {_token(provider, 'nemo')}") as nobody:
        none = await nobody.get("/api/v1/runs")
    assert none.status_code == 403 and "no role" in none.json()["error"]["message"]
    entries = sso.accounting.audit.list(action="budget")
    assert entries[0].actor == "developer:lars@acme.test"


async def test_web_login_session_and_logout(sso: Api, provider: Provider) -> None:
    async with sso.client() as browser:
        start = await browser.get("/api/v1/auth/login", params={"next": "/api/v1/me"})
        assert start.status_code == 302
        assert start.headers["location"].startswith(provider.issuer + "/auth?")
        assert "code_challenge=" in start.headers["location"]
        back = httpx.URL(log_in_at_provider(start.headers["location"], "alice"))
        done = await browser.get(back.path, params=back.params)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/api/v1/me"
        me = await browser.get("/api/v1/me")
        assert me.status_code == 200, me.text
        assert me.json()["roles"] == ["admin"] and me.json()["via"] == "session"
        cookie = browser.cookies["orchestra_session"]
        out = await browser.post("/api/v1/auth/logout")
        assert out.status_code == 200
        assert out.json()["end_session_url"].startswith(provider.issuer)
    async with sso.client(cookie=f"orchestra_session={cookie}") as replay:
        after = await replay.get("/api/v1/me")
    assert after.status_code == 401
    assert "ended (logout)" in after.json()["error"]["message"]
    logins = sso.accounting.audit.list(action="auth.login")
    assert logins[0].actor == "developer:alice@acme.test"


async def test_a_login_with_a_forged_state_is_refused(sso: Api, provider: Provider) -> None:
    async with sso.client() as browser:
        start = await browser.get("/api/v1/auth/login")
        back = httpx.URL(log_in_at_provider(start.headers["location"], "alice"))
        params = dict(back.params)
        params["state"] = "not-the-state"
        answer = await browser.get(back.path, params=params)
    assert answer.status_code == 401
    assert "state" in answer.json()["error"]["message"]


async def test_tokens_and_sessions_expire(sso: Api, provider: Provider) -> None:
    token = _token(provider, "alice")
    async with sso.client() as browser:
        start = await browser.get("/api/v1/auth/login")
        back = httpx.URL(log_in_at_provider(start.headers["location"], "alice"))
        await browser.get(back.path, params=back.params)
        ctx = api_context(sso)
        exp = jwt.decode(token, provider.key).claims["exp"]
        ctx.clock = lambda: exp + 60.0  # past the leeway (30 s)
        session = await browser.get("/api/v1/me")
    bearer = await _me(sso, token)
    assert bearer.status_code == 401 and "expired" in bearer.json()["error"]["message"]
    assert session.status_code == 401 and "expired" in session.json()["error"]["message"]


async def test_a_token_for_another_audience_is_refused(sso: Api, provider: Provider) -> None:
    other = token_for(provider, "alice", resource="https://other.example/api")["access_token"]
    response = await _me(sso, other)
    assert response.status_code == 401
    error = response.json()["error"]
    assert "audience" in error["message"] and "https://other.example/api" in error["message"]


async def test_a_token_from_another_issuer_is_refused(sso: Api, provider: Provider) -> None:
    header = {"alg": "RS256", "kid": "test-rs256"}
    forged = jwt.encode(header, _claims(provider, iss="https://evil.example"), provider.key)
    response = await _me(sso, forged)
    assert response.status_code == 401
    assert "issued by 'https://evil.example'" in response.json()["error"]["message"]


async def test_an_unsigned_token_is_refused(sso: Api, provider: Provider) -> None:
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(provider))}."
    response = await _me(sso, unsigned)
    assert response.status_code == 401
    assert "alg='none'" in response.json()["error"]["message"]


async def test_an_hmac_token_keyed_with_the_public_key_is_refused(
    sso: Api, provider: Provider
) -> None:
    # What a library that trusts the header's alg would verify with the provider's key.
    public_pem = RSAKey.import_key(provider.key.as_dict(private=False)).as_pem(private=False)
    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'test-rs256'})}.{_b64(_claims(provider))}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    confused = f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    response = await _me(sso, confused)
    assert response.status_code == 401
    assert "alg='HS256'" in response.json()["error"]["message"]


async def test_a_token_signed_by_another_key_is_refused(sso: Api, provider: Provider) -> None:
    stranger = RSAKey.generate_key(2048, parameters={"kid": "stranger"})
    forged = jwt.encode({"alg": "RS256", "kid": "stranger"}, _claims(provider), stranger)
    response = await _me(sso, forged)
    assert response.status_code == 401
    assert "'stranger' is not one of" in response.json()["error"]["message"]
    same_kid = jwt.encode({"alg": "RS256", "kid": "test-rs256"}, _claims(provider), stranger)
    response = await _me(sso, same_kid)
    assert response.status_code == 401
    assert "signature does not verify" in response.json()["error"]["message"]
