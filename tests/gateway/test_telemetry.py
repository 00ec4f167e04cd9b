"""OpenTelemetry GenAI spans for model calls: a whole call, a streamed one and a failed one
through a live gateway on loopback, read back with the SDK's in-memory exporter; no
prompt content and no key in any span; off unless configured."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import ValidationError

from orchestra.config import TelemetrySection
from orchestra.gateway import MemoryAccountant, TracedAccountant, traced, tracer_provider
from orchestra.testing import FakeUpstream, Fault, Reply
from tests.gateway.helpers import ServerThread, gateway_config, make_app, memory_accountant
from tests.polling import eventually

PROMPT = "the secret plan is a purple giraffe"


@dataclass
class Traced:
    url: str
    key: str
    accountant: MemoryAccountant
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


@pytest.fixture
def traced_gateway(upstream: FakeUpstream) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    accountant = memory_accountant()
    key = accountant.add_key("alice", "payments")
    wrapped = TracedAccountant(accountant, provider.get_tracer("test"))
    server = ServerThread(make_app(gateway_config(upstream.base_url), wrapped)).start()
    try:
        yield Traced(server.base_url, key, accountant, exporter)
    finally:
        server.stop()
        provider.shutdown()


def _call(gw: Traced, *, stream: bool = False) -> httpx.Response:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": stream,
    }
    return httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": gw.key}, timeout=10)


def _no_content_nor_key(span: ReadableSpan, key: str) -> None:
    text = repr(dict(span.attributes or {})) + span.name
    assert PROMPT not in text and "purple" not in text
    assert key not in text and "alice" not in text


def test_a_whole_call_is_one_genai_client_span(
    traced_gateway: Traced, upstream: FakeUpstream
) -> None:
    upstream.script(Reply(text="hello back"))
    assert _call(traced_gateway).status_code == 200
    assert eventually(lambda: len(traced_gateway.spans()) == 1)
    span = traced_gateway.spans()[0]
    entry = traced_gateway.accountant.entries[-1]
    attrs = dict(span.attributes or {})
    assert span.name == "chat claude-haiku-4-5" and span.kind is SpanKind.CLIENT
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.model"] == "claude-haiku-4-5"
    assert attrs["gen_ai.response.model"] == "claude-haiku-4-5"
    assert attrs["gen_ai.usage.input_tokens"] == entry.usage.input_tokens > 0
    assert attrs["gen_ai.usage.output_tokens"] == entry.usage.output_tokens > 0
    assert attrs["orchestra.request_id"] == entry.request_id
    assert attrs["orchestra.stream"] is False
    assert "error.type" not in attrs and span.status.status_code is StatusCode.UNSET
    assert span.start_time is not None and span.end_time is not None
    assert span.end_time - span.start_time == pytest.approx(entry.latency_ms * 1e6, abs=1e3)
    _no_content_nor_key(span, traced_gateway.key)


def test_a_streamed_call_is_one_span_when_the_stream_ends(
    traced_gateway: Traced, upstream: FakeUpstream
) -> None:
    upstream.script(Reply(text="streamed words"))
    response = _call(traced_gateway, stream=True)
    assert response.status_code == 200 and b"message_stop" in response.content
    assert eventually(lambda: len(traced_gateway.spans()) == 1)
    span = traced_gateway.spans()[0]
    attrs = dict(span.attributes or {})
    entry = traced_gateway.accountant.entries[-1]
    assert attrs["orchestra.stream"] is True
    assert attrs["gen_ai.usage.output_tokens"] == entry.usage.output_tokens > 0
    assert attrs["gen_ai.response.model"] == "claude-haiku-4-5"
    assert "orchestra.ttft_ms" in attrs
    _no_content_nor_key(span, traced_gateway.key)


def test_a_failed_call_has_its_error_type_and_an_error_status(
    traced_gateway: Traced, upstream: FakeUpstream
) -> None:
    upstream.script(Fault(status=400, message=f"bad request about {PROMPT}"))
    assert _call(traced_gateway).status_code == 400
    assert eventually(lambda: len(traced_gateway.spans()) == 1)
    span = traced_gateway.spans()[0]
    attrs = dict(span.attributes or {})
    assert attrs["error.type"] == "client_error"
    assert span.status.status_code is StatusCode.ERROR
    assert attrs["gen_ai.usage.output_tokens"] == 0
    _no_content_nor_key(span, traced_gateway.key)


def test_telemetry_is_off_unless_configured() -> None:
    accountant = memory_accountant()
    assert tracer_provider(TelemetrySection()) is None
    assert traced(accountant, None) is accountant  # nothing wraps the request path
    with pytest.raises(ValidationError, match="otlp_endpoint"):
        TelemetrySection(traces="otlp")
    provider = tracer_provider(TelemetrySection(traces="console", service_name="gw-test"))
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "gw-test"
    provider.shutdown()
    otlp = tracer_provider(
        TelemetrySection(traces="otlp", otlp_endpoint="http://127.0.0.1:9/v1/traces")
    )
    assert otlp is not None
    otlp.shutdown()  # nothing was queued: no request is made


def test_the_composition_root_wraps_the_accountant_only_when_configured(tmp_path: Path) -> None:
    from orchestra.app import Orchestra
    from orchestra.config import OrchestraConfig
    from orchestra.gateway import StoreAccountant

    for telemetry, kind in (({}, StoreAccountant), ({"traces": "console"}, TracedAccountant)):
        config = OrchestraConfig.model_validate({"telemetry": telemetry})
        root = Orchestra.from_environment(
            config=config, database_url=f"sqlite:///{tmp_path / 'orchestra.db'}"
        )
        opened = root.open_gateway()
        try:
            assert type(opened.gateway.accountant) is kind
            assert opened.gateway.accountant.healthy()  # delegated to the store's
        finally:
            for close in opened.close_hooks:
                asyncio.run(close())
