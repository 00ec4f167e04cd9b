"""How the engine reaches a gateway's accounting: run keys, run budgets, costs per step.

Each run calls the gateway with its own key, charged to the developer who started the run
and to their team, and bound to the run's budget; the key is revoked when the run ends.

- :class:`LocalRunKeys`: a gateway in this process (shared database): keys and budgets
  are made in its accounting directly, for the developer :func:`run_developer` names.
- :class:`GatewayRunKeys`: a shared gateway elsewhere (``engine.gateway_url``): the
  gateway makes them (``POST /v1/orchestra/runs``) for the owner of the developer's key.

:func:`serve_on_loopback` serves a gateway app (built by the composition root,
:mod:`orchestra.app`) on a loopback port in a background thread and yields a
:class:`LocalGateway`; :class:`RunAccounting` reads the ledger's cost per step.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from orchestra.accounting.keys import KeyHolding
from orchestra.config import OrchestraConfig
from orchestra.errors import EngineError

DEVELOPER_ENV = "ORCHESTRA_DEVELOPER"
"""Environment variable naming the developer a run is charged to (wins over the config)."""


def run_developer(config: OrchestraConfig) -> tuple[str, str | None]:
    """``(developer, team)`` a run started here is charged to: ``$ORCHESTRA_DEVELOPER``,
    else ``engine.developer``, else the organisation's only developer (the solo default
    ``developer``); the team is the developer's ``unit`` in ``organisation.developers``."""
    import os

    listed = {d.name: d for d in config.organisation.developers}
    name = os.environ.get(DEVELOPER_ENV) or config.engine.developer
    if name is None:
        if len(listed) != 1:
            raise EngineError(
                f"the organisation lists {len(listed)} developers: whose run is this?",
                hint=f"set {DEVELOPER_ENV}=NAME or engine.developer in orchestra.yaml",
            )
        name = next(iter(listed))
    if name not in listed:
        raise EngineError(
            f"developer {name!r} is not in organisation.developers",
            hint=f"add them to orchestra.yaml, or set {DEVELOPER_ENV} to one of: "
            + ", ".join(sorted(listed)),
        )
    return name, listed[name].unit


@dataclass
class LocalRunKeys:
    """Run keys and budgets made in a gateway's accounting in this process."""

    accounting: Any
    """The gateway's ``orchestra.accounting.Accounting``."""
    developer: str
    team: str | None = None
    owners: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """Runs charged to someone else than :attr:`developer` (runs a server starts for the
    caller), by run id: ``(developer, team)``."""

    def charge_to(self, run_id: str, developer: str, team: str | None) -> None:
        """Charge the new run ``run_id`` to ``developer`` and ``team`` (before it starts)."""
        self.owners[run_id] = (developer, team)

    def open(self, run_id: str, budget_usd: float | None, holding: KeyHolding | None = None) -> str:
        """A new key for ``run_id``: its first developer's on a resume, else its owner's
        (:meth:`charge_to`), else ours."""
        earlier = self.accounting.keys.run_keys(run_id)
        developer, team = (
            (earlier[-1].developer, earlier[-1].team)
            if earlier
            else self.owners.get(run_id, (self.developer, self.team))
        )
        secret, _record = self.accounting.runs.open(
            developer, team, run_id, budget_usd, holding=holding
        )
        return str(secret)

    def end(self, run_id: str) -> None:
        """Revoke the keys of ``run_id``."""
        self.owners.pop(run_id, None)
        self.accounting.runs.end(run_id)


def run_owner(accounting: Any, run_id: str) -> str | None:
    """The developer the run ``run_id`` is charged to: its first key's (``None``: no key)."""
    earlier = accounting.keys.run_keys(run_id)
    return str(earlier[0].developer) if earlier else None


class GatewayRunKeys:
    """Run keys and budgets made by a shared gateway, for the owner of ``api_key``."""

    def __init__(
        self, base_url: str, api_key: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(60.0), transport=transport
        )
        self._api_key = api_key

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post(path, json=body, headers={"x-api-key": self._api_key})
        except httpx.TransportError as exc:
            raise EngineError(
                f"cannot reach the gateway at {self._client.base_url}: {exc}",
                hint="check engine.gateway_url and that the gateway is running",
            ) from exc
        if response.status_code >= 400:
            try:
                error = response.json().get("error") or {}
                message = str(error.get("message") or response.text[:300])
            except ValueError:
                message = response.text[:300]
            raise EngineError(
                f"the gateway refused {path} (HTTP {response.status_code}): {message}",
                hint="the gateway must be this Orchestra version or newer, and the key in "
                "engine.gateway_key_env a developer's key",
            )
        data: dict[str, Any] = response.json()
        return data

    def open(self, run_id: str, budget_usd: float | None, holding: KeyHolding | None = None) -> str:
        """A new key for ``run_id`` from the gateway (with the run's budget)."""
        body: dict[str, Any] = {"run_id": run_id, "budget_usd": budget_usd}
        if holding is not None:
            body.update(holder=holding.holder, fence=list(holding.fence))
        return str(self._post("/v1/orchestra/runs", body)["key"])

    def end(self, run_id: str) -> None:
        """Ask the gateway to revoke the keys of ``run_id``."""
        self._post("/v1/orchestra/runs/end", {"run_id": run_id})

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()


@dataclass
class RunAccounting:
    """The engine's view of a gateway's accounting: per-run budgets and costs."""

    accounting: Any
    """The gateway's ``orchestra.accounting.Accounting``."""

    def costs_for_run(self, run_id: str) -> dict[str, float]:
        """Dollars per step of ``run_id``, from the ledger entries the gateway wrote."""
        out: dict[str, float] = {}
        for entry in self.accounting.ledger.entries():
            if entry.attribution.run_id != run_id or entry.cost_usd is None:
                continue
            step = entry.attribution.step or "?"
            out[step] = out.get(step, 0.0) + float(entry.cost_usd)
        return out


@dataclass
class LocalGateway(RunAccounting):
    """A running gateway: its URL and costs (runs get their keys from its accounting)."""

    base_url: str = ""


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_on_loopback(app: Any, accounting: Any) -> Iterator[LocalGateway]:
    """Serve the gateway ``app`` over HTTP on a free loopback port until the block ends.

    ``accounting`` is the app's ``orchestra.accounting.Accounting`` (already started):
    costs are read from it.
    """
    import uvicorn

    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    )

    def serve() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=serve, name="orchestra-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise EngineError("the local gateway did not start", hint="see the log above")
            time.sleep(0.02)
        yield LocalGateway(accounting, base_url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
