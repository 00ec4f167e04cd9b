"""The webhook routes as `orchestra serve` builds them: secret from the encrypted store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from orchestra.accounting import SecretBox, SecretStore
from orchestra.analytics import github_signature
from orchestra.server.app import OPTIONS_ENV, ServeOptions, app_from_environment
from tests.analytics.fixtures import organisation, pull_request, served_app


def test_serve_answers_github_webhooks_with_the_stored_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("ORCHESTRA_HOME", str(home))
    SecretStore(SecretBox.from_home(home)).set("github-webhook", "s3cret")
    assert b"s3cret" not in (home / "secrets.json").read_bytes()  # encrypted at rest
    config = tmp_path / "orchestra.yaml"
    config.write_text("gateway:\n  port: 0\ninsight:\n  github_secret: github-webhook\n")
    options = ServeOptions(
        include_api=True,
        config_path=str(config),
        database_url=f"sqlite:///{tmp_path / 'o.db'}",
        install_sighup=False,
    )
    monkeypatch.setenv(OPTIONS_ENV, options.to_env())
    app = app_from_environment()
    body = json.dumps(pull_request(3)).encode()

    async def post(secret: str) -> int:
        headers = {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": "abc",
            "X-Hub-Signature-256": github_signature(secret, body),
        }
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.post(
                "/api/insight/webhooks/github", content=body, headers=headers
            )
            return answer.status_code

    try:
        assert asyncio.run(post("wrong")) == 401
        assert asyncio.run(post("s3cret")) == 202
    finally:
        for hook in app.shutdown_hooks:
            asyncio.run(hook())


def test_serve_answers_kpis_to_gateway_key_holders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with served_app(tmp_path, monkeypatch, organisation, ["alice", "bob"]) as (app, keys):
        alice, bob = keys["alice"], keys["bob"]

        async def get(path: str, key: str | None) -> httpx.Response:
            headers = {"x-api-key": key} if key else {}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get(path, headers=headers)

        assert asyncio.run(get("/api/insight/kpis", None)).status_code == 401
        assert asyncio.run(get("/api/insight/kpis", "orc_not-a-key")).status_code == 401
        own = asyncio.run(get("/api/insight/kpis?unit=alice&period=2026-11&kpi=cycle_time", alice))
        assert own.status_code == 200, own.text
        figure = own.json()["kpis"]["cycle_time"]
        assert figure["value"] is None and figure["rows"] == []
        assert figure["definition"]["formula"]
        other = asyncio.run(get("/api/insight/kpis?unit=alice", bob))
        assert other.status_code == 403 and other.json()["hint"]
        squad = asyncio.run(get("/api/insight/kpis?unit=payments&period=nope", bob))
        assert squad.status_code == 400
