"""Configuration reloads are audited: through the API with the caller as actor, and on
SIGHUP with the signal as actor (no one authenticated)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestra.server import build_app
from tests.server.api.conftest import ORG, Api, api_config

pytestmark = pytest.mark.anyio


async def test_an_api_reload_is_audited_with_the_caller(api: Api) -> None:
    async with api.client("root") as admin:
        reloaded = await admin.post("/api/v1/config/reload")
    async with api.client("lena") as lead:
        refused = await lead.post("/api/v1/config/reload")
    assert reloaded.status_code == 200, reloaded.text
    assert refused.status_code == 403
    entry = api.accounting.audit.list(action="config.reload")[0]
    assert entry.actor == "developer:root" and entry.details["trigger"] == "api"


async def test_a_sighup_reload_is_audited_with_the_signal(tmp_path: Path) -> None:
    config_file = tmp_path / "orchestra.yaml"
    config_file.write_text(yaml.safe_dump({"organisation": ORG}))
    app = build_app(
        api_config(),
        database_url=f"sqlite:///{tmp_path / 'o.db'}",
        config_path=config_file,
        install_sighup=True,
    )
    audit = app.gateway.accountant.accounting.audit  # type: ignore[attr-defined]
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    queue.put_nowait({"type": "lifespan.startup"})

    async def receive() -> dict[str, str]:
        return await queue.get()

    async def send(message: dict[str, Any]) -> None:
        assert not message["type"].endswith("failed"), message

    served = asyncio.create_task(app({"type": "lifespan"}, receive, send))
    try:
        for _ in range(200):
            await asyncio.sleep(0.02)
            if app.gateway.started:
                break
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(250):
            await asyncio.sleep(0.02)
            entries = audit.list(action="config.reload")
            if entries:
                break
        assert entries, "the SIGHUP reload was not audited"
        assert entries[0].actor.startswith("signal:SIGHUP")
        assert entries[0].details["trigger"] == "SIGHUP"
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        queue.put_nowait({"type": "lifespan.shutdown"})
        await served
