"""One real OpenID provider per test session, and the API configured to trust it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.identity.provider import CLIENT_SECRET, GROUPS, Provider, start_provider
from tests.server.api.conftest import Api, api_config, make_api


@pytest.fixture(scope="session")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    p = start_provider(tmp_path_factory.mktemp("oidc"))
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def sso(provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setenv("TEST_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    config = api_config(oidc=provider.oidc_settings(), groups=GROUPS, session_ttl_s=3600)
    yield from make_api(tmp_path, config)


def api_context(api: Api) -> Any:
    """The API's context (to move its clock)."""
    return api.app.fallback.state.api  # type: ignore[union-attr]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
