"""OpenTelemetry GenAI spans for model calls, emitted where a call is recorded.

One hook point: :class:`TracedAccountant` wraps the gateway's accountant and, whenever a
call's record is handed over for the ledger (a whole reply, a stream's close, a failure,
a refusal), emits one span following the GenAI semantic conventions
(``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.usage.*``, ``error.type``) with the call's own start
time and latency. The request path is not touched: with telemetry off nothing is wrapped,
so the cost when disabled is nil.

The hook sees only the call record, never the request or reply bodies, so no prompt or
completion content can reach a span; nor does any key, credential or caller identity
(the caller's key and developer are left out on purpose: traces often leave the
organisation for a tracing service).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from orchestra.gateway.accounts import Accountant, Caller, CallRecord, Holding, StreamJournal
from orchestra.gateway.errors import LimitRefused
from orchestra.providers.usage import Usage

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from orchestra.config.telemetry import TelemetrySection

log = logging.getLogger("orchestra.gateway.telemetry")

OPERATION = "chat"
"""Both wire formats' calls (Messages, Chat Completions) are GenAI ``chat`` operations."""
_PROVIDERS = {"anthropic": "anthropic", "openai": "openai"}


def span_attributes(record: CallRecord) -> dict[str, Any]:
    """A call record as GenAI semantic-convention attributes (plus ``orchestra.*`` ones
    for what the conventions have no name for). No content, no credential, no caller."""
    usage = record.usage
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.request.model": record.requested_model,
        "gen_ai.usage.input_tokens": usage.input_tokens
        + usage.cache_read_tokens
        + usage.cache_write_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "orchestra.request_id": record.request_id,
        "orchestra.outcome": record.outcome,
        "orchestra.stream": record.stream,
        "orchestra.client_format": record.client_format,
        "orchestra.cost_usd": float(record.cost_usd),
    }
    if usage.cache_read_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        attrs["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
    if record.provider:
        name = _PROVIDERS.get(record.provider, record.provider)
        attrs["gen_ai.provider.name"] = name
        attrs["gen_ai.system"] = name  # the attribute's name before semconv 1.37
    if record.served_model:
        attrs["gen_ai.response.model"] = record.served_model
    if record.status is not None:
        attrs["http.response.status_code"] = record.status
    if record.outcome != "ok":
        attrs["error.type"] = record.outcome
    for key, value in (
        ("orchestra.tier", record.tier),
        ("orchestra.agent", record.agent),
        ("orchestra.run_id", record.run_id),
        ("orchestra.step", record.step),
        ("orchestra.ttft_ms", record.ttft_ms),
    ):
        if value is not None:
            attrs[key] = value
    if len(record.attempts) > 1:
        attrs["orchestra.attempts"] = len(record.attempts)
    return attrs


def emit_call_span(tracer: Tracer, record: CallRecord) -> None:
    """One CLIENT span for ``record``, from its start for its latency. Never raises: the
    call is served and recorded whatever the telemetry does."""
    try:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        start = int(record.started_at.timestamp() * 1_000_000_000)
        end = start + int((record.latency_ms or 0.0) * 1_000_000)
        span = tracer.start_span(
            f"{OPERATION} {record.requested_model}",
            kind=SpanKind.CLIENT,
            start_time=start,
            attributes=span_attributes(record),
        )
        if record.outcome != "ok":
            span.set_status(Status(StatusCode.ERROR, record.outcome))
        span.end(end_time=end)
    except Exception:
        log.exception("the span of call %s was not emitted", record.request_id)


class _TracedJournal:
    """A stream's journal whose close also emits the call's span."""

    def __init__(self, inner: StreamJournal, tracer: Tracer) -> None:
        self.inner = inner
        self.tracer = tracer

    def progress(self, usage: Usage, cost_usd: Decimal) -> None:
        self.inner.progress(usage, cost_usd)

    async def close(self, record: CallRecord) -> None:
        try:
            await self.inner.close(record)
        finally:
            emit_call_span(self.tracer, record)


class TracedAccountant:
    """An :class:`Accountant` that emits a GenAI span for each call it records, and
    otherwise does exactly what the accountant it wraps does."""

    def __init__(self, inner: Accountant, tracer: Tracer) -> None:
        self.inner = inner
        self.tracer = tracer

    def refused(self, record: CallRecord, refusal: LimitRefused) -> None:
        """Record the refusal, then its span (``error.type``: the outcome)."""
        self.inner.refused(record, refusal)
        emit_call_span(self.tracer, record)

    async def finish(self, reservation: Any, record: CallRecord) -> None:
        """Append the entry, then the span."""
        try:
            await self.inner.finish(reservation, record)
        finally:
            emit_call_span(self.tracer, record)

    def journal_and_queue(self, reservation: Any, record: CallRecord) -> bool:
        """Journal and queue the entry; the span when it was (else :meth:`finish` will)."""
        queued = self.inner.journal_and_queue(reservation, record)
        if queued:
            emit_call_span(self.tracer, record)
        return queued

    def open_stream(self, draft: CallRecord, reservation: Any) -> StreamJournal:
        """The stream's journal, whose close emits the span."""
        return _TracedJournal(self.inner.open_stream(draft, reservation), self.tracer)

    # Everything else (keys, limits, prices, spend, audit, runs) is the inner one's.
    def authenticate(self, secret: str) -> Caller | None:
        """The inner accountant's."""
        return self.inner.authenticate(secret)

    def keys_version(self) -> int:
        """The inner accountant's."""
        return self.inner.keys_version()

    def cost(self, model: str, usage: Usage) -> Decimal:
        """The inner accountant's."""
        return self.inner.cost(model, usage)

    def price_known(self, model: str) -> bool:
        """The inner accountant's."""
        return self.inner.price_known(model)

    async def admit(
        self, caller: Caller, run_id: str | None, model: str, tokens: int, usd: Decimal
    ) -> Any:
        """The inner accountant's."""
        return await self.inner.admit(caller, run_id, model, tokens, usd)

    def journal_call(self, reservation: Any, record: CallRecord) -> None:
        """The inner accountant's."""
        self.inner.journal_call(reservation, record)

    def reconcile_incomplete(self) -> int:
        """The inner accountant's."""
        return self.inner.reconcile_incomplete()

    def spend(self, developer: str | None) -> dict[str, Any]:
        """The inner accountant's."""
        return self.inner.spend(developer)

    def headroom(self) -> list[tuple[str, Decimal]]:
        """The inner accountant's."""
        return self.inner.headroom()

    def healthy(self) -> bool:
        """The inner accountant's."""
        return self.inner.healthy()

    def exposition(self) -> str:
        """The inner accountant's."""
        return self.inner.exposition()

    def audit(self, caller: Caller, action: str, target: str, details: dict[str, Any]) -> None:
        """The inner accountant's."""
        self.inner.audit(caller, action, target, details)

    def open_run(
        self, caller: Caller, run_id: str, budget_usd: Decimal | None, holding: Holding = None
    ) -> str:
        """The inner accountant's."""
        return self.inner.open_run(caller, run_id, budget_usd, holding)

    def end_run(self, caller: Caller, run_id: str) -> int:
        """The inner accountant's."""
        return self.inner.end_run(caller, run_id)

    def __getattr__(self, name: str) -> Any:
        # What an accountant has beyond the protocol (e.g. a store accountant's
        # ``accounting``, which the server's composition root reads).
        return getattr(self.inner, name)


def traced(inner: Accountant, tracer: Tracer | None) -> Accountant:
    """``inner`` with spans when ``tracer`` is given, else ``inner`` itself (no cost)."""
    if tracer is None:
        return inner
    return TracedAccountant(inner, tracer)


def tracer_provider(section: TelemetrySection) -> TracerProvider | None:
    """The tracer provider ``telemetry:`` configures (``None`` when off). It is the
    gateway's own, not the process-wide one; shut it down to flush what is queued."""
    if section.traces == "none":
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if section.traces == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=section.otlp_endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": section.service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def gateway_tracer(provider: TracerProvider | None) -> Tracer | None:
    """The gateway's tracer from ``provider`` (``None`` when telemetry is off)."""
    if provider is None:
        return None
    return provider.get_tracer("orchestra.gateway")
