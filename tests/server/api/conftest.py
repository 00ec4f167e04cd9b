"""Fixtures: the combined application over a SQLite database, and keys for each role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from orchestra.config import OrchestraConfig
from orchestra.gateway import GatewayApp
from orchestra.server import build_app

ORG: dict[str, Any] = {
    "name": "acme",
    "units": [
        {"name": "eng", "kind": "division"},
        {"name": "payments", "kind": "tribe", "parent": "eng"},
        {"name": "squad-a", "kind": "squad", "parent": "payments"},
        {"name": "squad-b", "kind": "squad", "parent": "payments"},
    ],
    "developers": [
        {"name": "root", "role": "admin"},
        {"name": "lena", "role": "lead", "unit": "squad-a"},
        {"name": "dev", "role": "developer", "unit": "squad-a"},
        {"name": "vic", "role": "viewer", "unit": "squad-b"},
        {"name": "svc", "role": "viewer"},
    ],
}


def api_config(**identity: Any) -> OrchestraConfig:
    return OrchestraConfig.model_validate({"organisation": ORG, "identity": identity})


@dataclass
class Api:
    """The application, an in-process client and a key per developer."""

    app: GatewayApp
    keys: dict[str, str]
    key_ids: dict[str, str]

    def client(self, who: str | None = None, **headers: str) -> httpx.AsyncClient:
        if who is not None:
            headers["authorization"] = f"Bearer {self.keys[who]}"
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://testserver",
            headers=headers,
        )

    @property
    def accounting(self) -> Any:
        return self.app.gateway.accountant.accounting  # type: ignore[attr-defined]


def make_api(tmp_path: Path, config: OrchestraConfig) -> Iterator[Api]:
    """The app over a fresh SQLite database; ``config`` is also written to the file a
    reload reads."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = tmp_path / "orchestra.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True)))
    app = build_app(
        config, database_url=f"sqlite:///{tmp_path / 'orchestra.db'}", config_path=config_path
    )
    accounting = app.gateway.accountant.accounting  # type: ignore[attr-defined]
    keys: dict[str, str] = {}
    ids: dict[str, str] = {}
    for name, team in (("root", None), ("lena", "squad-a"), ("dev", "squad-a"), ("vic", "squad-b")):
        secret, record = accounting.keys.create(name, team, admin=name == "root", actor="test")
        keys[name], ids[name] = secret, record.id
    secret, record = accounting.keys.create("svc", None, actor="test")
    keys["svc"], ids["svc"] = secret, record.id
    try:
        yield Api(app, keys, ids)
    finally:
        accounting.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(tmp_path, api_config())


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
