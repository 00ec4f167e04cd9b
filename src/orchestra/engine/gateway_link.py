"""Running the gateway next to the engine: for the offline demo, tests and one-process use.

:func:`serve_on_loopback` serves a gateway app (built by the composition root,
:mod:`orchestra.app`) on a loopback port in a background thread, creates the engine's key,
and yields a :class:`LocalGateway` that defines per-run budgets and reads the ledger's cost
per step. :class:`RunAccounting` does the budget and cost part for any gateway in this
process (``orchestra serve``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from orchestra.errors import EngineError


@dataclass
class RunAccounting:
    """The engine's view of a gateway's accounting: per-run budgets and costs."""

    accounting: Any
    """The gateway's ``orchestra.accounting.Accounting``."""

    def define_run_budget(self, run_id: str, usd: float) -> None:
        """A budget scoped to ``run_id`` (the gateway refuses calls beyond it)."""
        from orchestra.accounting.budgets import BudgetSpec

        self.accounting.budgets.define(
            BudgetSpec(
                name=f"run:{run_id}",
                scope="run",
                subject=run_id,
                cap_usd=Decimal(str(usd)),
                period="none",
                soft_pct=None,
            ),
            actor="engine",
        )

    def costs_for_run(self, run_id: str) -> dict[str, float]:
        """Dollars per step of ``run_id``, from the ledger entries the gateway wrote."""
        out: dict[str, float] = {}
        for entry in self.accounting.ledger.entries():
            if entry.attribution.run_id != run_id or entry.cost_usd is None:
                continue
            step = entry.attribution.step or "?"
            out[step] = out.get(step, 0.0) + float(entry.cost_usd)
        return out

    def create_engine_key(self) -> str:
        """A new gateway key for the engine's model calls (its secret)."""
        secret, _record = self.accounting.keys.create("orchestra-engine", name="engine")
        return str(secret)


@dataclass
class LocalGateway(RunAccounting):
    """A running gateway: its URL, the engine's key, budgets and costs."""

    base_url: str = ""
    api_key: str = ""


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_on_loopback(app: Any, accounting: Any) -> Iterator[LocalGateway]:
    """Serve the gateway ``app`` over HTTP on a free loopback port until the block ends.

    ``accounting`` is the app's ``orchestra.accounting.Accounting`` (already started): the
    engine's key is created in it, and run budgets and costs go through it.
    """
    import uvicorn

    secret = RunAccounting(accounting).create_engine_key()
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
        yield LocalGateway(accounting, base_url=f"http://127.0.0.1:{port}", api_key=secret)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
