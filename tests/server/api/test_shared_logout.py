"""A logout is shared by every worker: two application instances over one database (as
``orchestra serve --workers 2`` runs them) — a session ended on one is refused by the
other, and by a worker started after the logout."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from orchestra.gateway import GatewayApp
from orchestra.identity import Identity, Principal
from orchestra.server import build_app
from tests.server.api.conftest import api_config

pytestmark = pytest.mark.anyio


def _worker(tmp_path: Path) -> GatewayApp:
    return build_app(api_config(), database_url=f"sqlite:///{tmp_path / 'orchestra.db'}")


def _client(app: GatewayApp, cookie: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"cookie": f"orchestra_session={cookie}"},
    )


def _ctx(app: GatewayApp) -> object:
    return app.fallback.state.api  # type: ignore[union-attr]


async def test_a_session_ended_on_one_worker_is_refused_by_every_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))  # one session key for all
    first, second = _worker(tmp_path), _worker(tmp_path)
    try:
        identity = Identity(Principal("developer", "dev", frozenset({"developer"})), via="oidc")
        cookie, _end = _ctx(first).sessions.issue(identity, token_expiry=None)  # type: ignore[attr-defined]
        async with _client(second, cookie) as other:
            assert (await other.get("/api/v1/me")).status_code == 200
            async with _client(first, cookie) as mine:
                out = await mine.post("/api/v1/auth/logout")
                assert out.status_code == 200, out.text
                assert (await mine.get("/api/v1/me")).status_code == 401
            refused = await other.get("/api/v1/me")
        assert refused.status_code == 401
        assert "ended (logout)" in refused.json()["error"]["message"]

        third = _worker(tmp_path)  # a worker started after the logout
        try:
            async with _client(third, cookie) as late:
                assert (await late.get("/api/v1/me")).status_code == 401
        finally:
            third.gateway.accountant.accounting.close()  # type: ignore[attr-defined]
    finally:
        for app in (first, second):
            app.gateway.accountant.accounting.close()  # type: ignore[attr-defined]
            await _ctx(app).aclose()  # type: ignore[attr-defined]
