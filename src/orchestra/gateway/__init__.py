"""The model gateway: Anthropic- and OpenAI-compatible endpoints with routing, fallbacks,
limits, budgets and a ledger entry for every call.

``build_gateway(config, accountant)`` gives the core; ``GatewayApp(gateway)`` its ASGI app.
:func:`orchestra.server.build_app` composes it with the REST API.
"""

from orchestra.gateway.accounts import (
    Accountant,
    Attempt,
    Caller,
    CallRecord,
    MemoryAccountant,
    StreamJournal,
)
from orchestra.gateway.app import GatewayApp, StartupHook
from orchestra.gateway.errors import GatewayHTTPError
from orchestra.gateway.formats import WireFormat
from orchestra.gateway.resilience import CircuitBreaker, CircuitState, RetryPolicy
from orchestra.gateway.routing import Route, RoutingSnapshot, Target, family_tier
from orchestra.gateway.service import Gateway, GatewayDeps

__all__ = [
    "Accountant",
    "Attempt",
    "CallRecord",
    "Caller",
    "CircuitBreaker",
    "CircuitState",
    "Gateway",
    "GatewayApp",
    "GatewayDeps",
    "GatewayHTTPError",
    "MemoryAccountant",
    "RetryPolicy",
    "Route",
    "RoutingSnapshot",
    "StartupHook",
    "StreamJournal",
    "Target",
    "WireFormat",
    "family_tier",
]
