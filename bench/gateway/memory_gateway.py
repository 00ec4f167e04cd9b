"""Diagnostic target: Orchestra's gateway with its accounting kept in memory.

Not a configuration anyone should run (nothing is durable): it separates the cost of the
request path itself (auth, routing, estimate, upstream call, usage parsing) from the cost of
the database-backed accounting measured by target (c). Run by ``run.py`` as
``python -m bench.gateway.memory_gateway PORT [no-policies]``, under uvicorn set up as
``orchestra gateway`` sets it up. With ``no-policies`` the Cedar policies are not enforced:
the baseline the policy check on the hot path is measured against (the key's developer
belongs to a squad under a tribe limited to a region, so the shipped role and residency
policies are all evaluated).
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal

import yaml

from orchestra.config import parse_config
from orchestra.gateway import Caller, Gateway, GatewayApp, GatewayDeps, MemoryAccountant

BENCH_KEY = "orc_bench_memory"


def create(policies: bool = True) -> GatewayApp:
    """The app, pointed at ``$BENCH_UPSTREAM``; ``policies``: enforce the Cedar policies."""
    config = parse_config(
        yaml.safe_dump(
            {
                "organisation": {
                    "units": [
                        {"name": "bench-tribe", "kind": "tribe", "regions": ["eu"]},
                        {"name": "bench-team", "kind": "squad", "parent": "bench-tribe"},
                    ],
                    "developers": [{"name": "bench", "unit": "bench-team"}],
                },
                "providers": {
                    "anthropic": {
                        "kind": "anthropic",
                        "base_url": os.environ["BENCH_UPSTREAM"],
                        "region": "eu",
                    }
                },
                "models": {"claude-haiku-4-5": {"provider": "anthropic"}},
                "tiers": {"haiku": {"model": "claude-haiku-4-5"}},
            }
        ),
        environ={},
    )
    accountant = MemoryAccountant(prices={"claude-haiku-4-5": (Decimal(1), Decimal(5))})
    accountant.keys[BENCH_KEY] = Caller("bench", "bench", "bench-team")
    return GatewayApp(Gateway(config, accountant, GatewayDeps(policies=policies)))


def main() -> None:
    import uvicorn

    from orchestra.server.protocol import uvicorn_options

    app = create(policies=sys.argv[2:] != ["no-policies"])
    app.startup_hooks.append(_tune_gc)  # as in `orchestra gateway`'s worker processes
    uvicorn.run(app, port=int(sys.argv[1]), log_level="warning", **uvicorn_options())


async def _tune_gc() -> None:
    from orchestra.server.app import tune_gc

    tune_gc()


if __name__ == "__main__":
    main()
