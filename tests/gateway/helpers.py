"""Shared test helpers: a gateway configuration pointed at the fake upstream, and a real
uvicorn server on a loopback port in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import uvicorn

from orchestra.config import parse_config
from orchestra.config.schema import OrchestraConfig
from orchestra.gateway import Gateway, GatewayApp, GatewayDeps, MemoryAccountant
from orchestra.testing.asgi import PromptServer


def gateway_config(base_url: str, **gateway: Any) -> OrchestraConfig:
    """Anthropic and OpenAI providers on the fake upstream; tiers with fallbacks."""
    return parse_config(gateway_config_yaml(base_url, **gateway), environ={})


def gateway_config_yaml(base_url: str, **gateway: Any) -> str:
    """:func:`gateway_config` as the text of an ``orchestra.yaml``."""
    import yaml

    data: dict[str, Any] = {
        "providers": {
            "anthropic": {"kind": "anthropic", "base_url": base_url, "timeout_s": 5},
            "local": {"kind": "openai", "base_url": base_url + "/v1", "timeout_s": 5},
        },
        "models": {
            "claude-opus-4-1": {"provider": "anthropic", "aliases": ["big"]},
            "claude-sonnet-4-5": {"provider": "anthropic"},
            "claude-haiku-4-5": {"provider": "anthropic"},
            "qwen-local": {"provider": "local", "upstream_name": "qwen2.5-coder"},
        },
        "tiers": {
            "opus": {"model": "claude-opus-4-1", "fallbacks": ["claude-sonnet-4-5"]},
            "sonnet": {"model": "claude-sonnet-4-5", "fallbacks": ["claude-opus-4-1"]},
            "haiku": {"model": "claude-haiku-4-5", "fallbacks": ["qwen-local"]},
        },
        "teams": {"local-team": {"tiers": {"sonnet": {"model": "qwen-local"}}}},
        "gateway": {
            "key_cache_ttl_s": 0,
            "retry": {"max_attempts": 2, "base_delay_s": 0, "max_delay_s": 0},
            **gateway,
        },
    }
    return str(yaml.safe_dump(data))


def memory_accountant() -> MemoryAccountant:
    """Prices per million tokens like Anthropic's (opus > sonnet > haiku > local $0)."""
    return MemoryAccountant(
        prices={
            "claude-opus-4-1": (Decimal(15), Decimal(75)),
            "claude-sonnet-4-5": (Decimal(3), Decimal(15)),
            "claude-haiku-4-5": (Decimal(1), Decimal(5)),
        },
        free_models=frozenset({"qwen-local"}),
    )


async def _no_sleep(_: float) -> None:
    return None


def make_app(
    config: OrchestraConfig, accountant: Any, deps: GatewayDeps | None = None
) -> GatewayApp:
    deps = deps or GatewayDeps(sleep=_no_sleep, rand=lambda: 0.0)
    return GatewayApp(Gateway(config, accountant, deps))


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 (free port) in a background thread."""

    def __init__(self, app: Any, **options: Any) -> None:
        """``options`` go to ``uvicorn.Config`` (e.g. ``uvicorn_options()``)."""
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        settings = {"log_level": "warning", "lifespan": "on", "access_log": False, **options}
        config = uvicorn.Config(app, **settings)
        self.server = PromptServer(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("gateway test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.exit_soon()
        self.thread.join(10)
        self.sock.close()


@contextmanager
def serve(app: Any) -> Iterator[ServerThread]:
    server = ServerThread(app).start()
    try:
        yield server
    finally:
        server.stop()
