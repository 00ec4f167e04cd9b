"""A real OpenID provider for the tests (``oidc-provider`` from npm, on Node) and a browser
stand-in that logs a user in through its development login form."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from joserfc.jwk import RSAKey

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
MODULES_ENV = "OIDC_PROVIDER_MODULES"
AUDIENCE = "https://orchestra.test/api"
CLIENT_ID = "orchestra-web"
CLIENT_SECRET = "test-client-secret-that-is-long-enough-000"
REDIRECT_URI = "http://testserver/api/v1/auth/callback"
TTL_S = 300
ACCOUNTS = {
    "alice": {"email": "alice@acme.test", "groups": ["eng-admins"]},
    "lars": {"email": "lars@acme.test", "groups": ["payments-leads"]},
    "dora": {"email": "dora@acme.test", "groups": ["squad-a-devs"]},
    "nemo": {"email": "nemo@acme.test", "groups": ["unmapped"]},
}
GROUPS = [
    {"group": "eng-admins", "roles": ["admin"]},
    {"group": "payments-leads", "roles": ["lead"], "unit": "payments", "lead_of": ["payments"]},
    {"group": "squad-a-devs", "roles": ["developer"], "unit": "squad-a"},
]


def node_modules() -> Path | None:
    """Where ``oidc-provider`` is installed (``make`` puts it under .venv/node)."""
    candidates = [os.environ.get(MODULES_ENV), str(REPO / ".venv/node/node_modules")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "oidc-provider").is_dir():
            return Path(candidate)
    return None


@dataclass
class Provider:
    """A running provider: its issuer and the key it signs with (for forging tokens)."""

    issuer: str
    key: RSAKey
    process: subprocess.Popen[str]
    audience: str = AUDIENCE
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    def oidc_settings(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "audience": self.audience,
            "client_secret_env": "TEST_OIDC_CLIENT_SECRET",
        }

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_provider(folder: Path) -> Provider:
    """Start the provider on a free loopback port."""
    modules = node_modules()
    node = shutil.which("node")
    if modules is None or node is None:
        raise RuntimeError("node and npm's oidc-provider are needed: run `make` (see Makefile)")
    key = RSAKey.generate_key(2048, parameters={"kid": "test-rs256", "alg": "RS256", "use": "sig"})
    config = {
        "signing_key": key.as_dict(private=True),
        "ttl": TTL_S,
        "audience": AUDIENCE,
        "accounts": ACCOUNTS,
        "client": {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [REDIRECT_URI],
            "post_logout_redirect_uris": ["http://testserver/"],
            "grant_types": ["authorization_code", "client_credentials"],
            "response_types": ["code"],
        },
    }
    path = folder / "provider.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, MODULES_ENV: str(modules)}
    proc = subprocess.Popen(
        [node, str(SCRIPT), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"oidc-provider did not start: {line!r}")
    return Provider(line.split()[-1], key, proc)


def log_in_at_provider(authorize_url: str, account: str) -> str:
    """Follow the provider's login as a browser would; returns the redirect back to the app
    (the callback URL with ``code`` and ``state``)."""
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        url = authorize_url
        for _ in range(12):
            response = browser.get(url)
            if response.status_code in (302, 303):
                location = urljoin(url, response.headers["location"])
                if location.startswith(REDIRECT_URI):
                    return location
                url = location
                continue
            assert "/interaction/" in url, (url, response.status_code)
            if 'name="login"' in response.text:
                form = {"prompt": "login", "login": account, "password": "any"}
            else:
                form = {"prompt": "consent"}
            response = browser.post(url, data=form)
            assert response.status_code in (302, 303), response.text[:500]
            url = urljoin(url, response.headers["location"])
            if url.startswith(REDIRECT_URI):
                return url
    raise AssertionError("the provider's login did not come back to the app")


def token_for(provider: Provider, account: str, resource: str = AUDIENCE) -> dict[str, Any]:
    """An access token (JWT for ``resource``) and ID token for ``account``, by the code flow
    with PKCE straight against the provider (what an API client does)."""
    from authlib.common.security import generate_token
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    verifier = generate_token(48)
    params = httpx.QueryParams(
        {
            "client_id": provider.client_id,
            "response_type": "code",
            "scope": "openid profile email",
            "redirect_uri": REDIRECT_URI,
            "state": "s",
            "nonce": "n",
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            "resource": resource,
        }
    )
    back = httpx.URL(log_in_at_provider(f"{provider.issuer}/auth?{params}", account))
    response = httpx.post(
        f"{provider.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": back.params["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "resource": resource,
        },
        auth=(provider.client_id, provider.client_secret),
    )
    response.raise_for_status()
    return dict(response.json())
