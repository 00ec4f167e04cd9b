"""The model gateway: Anthropic- and OpenAI-compatible endpoints with routing, fallbacks,
limits, budgets and a ledger entry for every call.

``Gateway(config, accountant, deps)`` gives the core; ``GatewayApp(gateway)`` its ASGI app.
:meth:`orchestra.app.Orchestra.open_gateway` builds the core over the store's accounting
(:class:`StoreAccountant`); :func:`orchestra.server.build_app` composes the app with the
REST API.
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
from orchestra.gateway.idempotency_store import IdempotencyStore
from orchestra.gateway.resilience import CircuitBreaker, CircuitState, RetryPolicy
from orchestra.gateway.routing import Route, RoutingSnapshot, Target, family_tier
from orchestra.gateway.service import Gateway, GatewayDeps
from orchestra.gateway.store_accountant import StoreAccountant
from orchestra.gateway.telemetry import (
    TracedAccountant,
    emit_call_span,
    gateway_tracer,
    span_attributes,
    traced,
    tracer_provider,
)

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
    "IdempotencyStore",
    "MemoryAccountant",
    "RetryPolicy",
    "Route",
    "RoutingSnapshot",
    "StartupHook",
    "StoreAccountant",
    "StreamJournal",
    "Target",
    "TracedAccountant",
    "WireFormat",
    "emit_call_span",
    "family_tier",
    "gateway_tracer",
    "span_attributes",
    "traced",
    "tracer_provider",
]
