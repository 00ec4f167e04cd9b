"""Diagnostic target: Orchestra's gateway with its accounting kept in memory.

Not a configuration anyone should run (nothing is durable): it separates the cost of the
request path itself (auth, routing, estimate, upstream call, usage parsing) from the cost of
the database-backed accounting measured by target (c). Run by ``run.py`` as
``python -m bench.gateway.memory_gateway PORT``, under uvicorn set up as ``orchestra
gateway`` sets it up.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal

import yaml

from orchestra.config import parse_config
from orchestra.gateway import Caller, Gateway, GatewayApp, MemoryAccountant

BENCH_KEY = "orc_bench_memory"


def create() -> GatewayApp:
    """The app, pointed at ``$BENCH_UPSTREAM``."""
    config = parse_config(
        yaml.safe_dump(
            {
                "providers": {
                    "anthropic": {"kind": "anthropic", "base_url": os.environ["BENCH_UPSTREAM"]}
                },
                "models": {"claude-haiku-4-5": {"provider": "anthropic"}},
                "tiers": {"haiku": {"model": "claude-haiku-4-5"}},
            }
        ),
        environ={},
    )
    accountant = MemoryAccountant(prices={"claude-haiku-4-5": (Decimal(1), Decimal(5))})
    accountant.keys[BENCH_KEY] = Caller("bench", "bench", "bench-team")
    return GatewayApp(Gateway(config, accountant))


def main() -> None:
    import uvicorn

    from orchestra.server.protocol import uvicorn_options

    app = create()
    app.startup_hooks.append(_tune_gc)  # as in `orchestra gateway`'s worker processes
    uvicorn.run(app, port=int(sys.argv[1]), log_level="warning", **uvicorn_options())


async def _tune_gc() -> None:
    from orchestra.server.app import tune_gc

    tune_gc()


if __name__ == "__main__":
    main()
