"""The official SDKs against the gateway (in front of the fake upstream)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal

import anthropic
import openai
import pytest

from orchestra.gateway import Caller
from orchestra.providers import Usage
from orchestra.testing import FakeUpstream, Fault, Reply, ToolCall
from tests.gateway.conftest import LiveGateway


@pytest.fixture
def clients() -> Iterator[ExitStack]:
    """Closes every SDK client a test made. An SDK client left to the garbage collector
    keeps its pooled keep-alive sockets open until a later collection; its ResourceWarning
    then fails whichever test happens to be running (it used to hit the 100-request
    budget test, whose allocations trigger a collection)."""
    with ExitStack() as stack:
        yield stack


def _anthropic(
    live: LiveGateway, clients: ExitStack, key: str | None = None
) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=live.url, api_key=key or live.key, max_retries=0)
    return clients.enter_context(client)


def _openai(live: LiveGateway, clients: ExitStack, key: str | None = None) -> openai.OpenAI:
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=key or live.key, max_retries=0)
    return clients.enter_context(client)


def test_anthropic_message_through_a_tier(
    live: LiveGateway, clients: ExitStack, upstream: FakeUpstream
) -> None:
    upstream.script(Reply(text="hello there", usage=Usage(input_tokens=12, output_tokens=3)))
    client = _anthropic(live, clients)
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-7-20260801",
        max_tokens=100,
        messages=[{"role": "user", "content": "hi"}],
    )
    message = raw.parse()
    assert message.content[0].text == "hello there"  # type: ignore[union-attr]
    assert raw.headers["x-orchestra-served-model"] == "claude-sonnet-4-5"
    assert raw.headers["x-orchestra-tier"] == "sonnet"
    sent = upstream.requests[-1]
    assert sent.json["model"] == "claude-sonnet-4-5"
    assert "x-api-key" not in sent.headers or sent.headers["x-api-key"] != live.key
    [entry] = live.accountant.entries
    assert entry.outcome == "ok"
    assert entry.tier == "sonnet"
    assert entry.usage == Usage(input_tokens=12, output_tokens=3)
    assert entry.cost_usd > 0


def test_anthropic_stream_with_tool_use(
    live: LiveGateway, clients: ExitStack, upstream: FakeUpstream
) -> None:
    upstream.script(
        Reply(
            tool_calls=[ToolCall(name="get_weather", input={"city": "Paris"})],
            usage=Usage(input_tokens=20, output_tokens=9),
        )
    )
    client = _anthropic(live, clients)
    with client.messages.stream(
        model="opus",
        max_tokens=50,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
    ) as stream:
        final = stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use"
    assert block.input == {"city": "Paris"}
    [entry] = live.accountant.entries
    assert entry.stream and entry.outcome == "ok"
    assert entry.usage.output_tokens == 9


@pytest.mark.anyio
async def test_async_clients(live: LiveGateway, upstream: FakeUpstream) -> None:
    async with (
        anthropic.AsyncAnthropic(base_url=live.url, api_key=live.key, max_retries=0) as aclient,
        openai.AsyncOpenAI(base_url=live.url + "/v1", api_key=live.key, max_retries=0) as oclient,
    ):
        message = await aclient.messages.create(
            model="haiku", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
        assert message.content
        stream = await oclient.chat.completions.create(
            model="claude-haiku-4-5",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    assert [e.outcome for e in live.accountant.entries] == ["ok", "ok"]


def test_openai_client_on_anthropic_upstream_is_translated(
    live: LiveGateway, clients: ExitStack, upstream: FakeUpstream
) -> None:
    upstream.script(Reply(text="translated", usage=Usage(input_tokens=5, output_tokens=2)))
    completion = _openai(live, clients).chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "translated"
    assert upstream.requests[-1].path == "/v1/messages"
    assert live.accountant.entries[0].usage.output_tokens == 2


def test_anthropic_client_on_openai_upstream_streams_translated(
    live: LiveGateway, clients: ExitStack, upstream: FakeUpstream
) -> None:
    upstream.script(Reply(text="from local", usage=Usage(input_tokens=4, output_tokens=2)))
    client = _anthropic(live, clients)
    with client.messages.stream(
        model="qwen-local", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = stream.get_final_text()
    assert text == "from local"
    sent = upstream.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json["model"] == "qwen2.5-coder"
    [entry] = live.accountant.entries
    assert entry.served_model == "qwen-local" and entry.cost_usd == 0


@pytest.mark.parametrize(
    ("status", "anthropic_error", "openai_error"),
    [
        (500, anthropic.InternalServerError, openai.InternalServerError),
        (529, anthropic.InternalServerError, openai.InternalServerError),
    ],
)
def test_upstream_failures_raise_the_sdk_error_classes(
    live: LiveGateway,
    clients: ExitStack,
    upstream: FakeUpstream,
    status: int,
    anthropic_error: type[Exception],
    openai_error: type[Exception],
) -> None:
    for _ in range(8):
        upstream.script(Fault(status=status))
    with pytest.raises(anthropic_error):
        _anthropic(live, clients).messages.create(
            model="haiku", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai_error):
        _openai(live, clients).chat.completions.create(
            model="claude-opus-4-1", messages=[{"role": "user", "content": "x"}]
        )


def test_models_list_with_both_sdks(live: LiveGateway, clients: ExitStack) -> None:
    anthropic_ids = {m.id for m in _anthropic(live, clients).models.list()}
    openai_ids = {m.id for m in _openai(live, clients).models.list()}
    assert anthropic_ids == openai_ids
    assert {"opus", "sonnet", "haiku", "claude-haiku-4-5"} <= anthropic_ids


def test_auth_errors_raise_the_sdk_error_classes(live: LiveGateway, clients: ExitStack) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        _anthropic(live, clients, "orc_wrong").messages.create(
            model="haiku", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.AuthenticationError):
        _openai(live, clients, "orc_wrong").chat.completions.create(
            model="haiku", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.NotFoundError, match="no-such-model"):
        _anthropic(live, clients).messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    restricted = "orc_test_restricted"
    live.accountant.keys[restricted] = Caller(
        "k-restricted", "carol", "payments", allowed_models=frozenset({"haiku"})
    )
    with pytest.raises(anthropic.PermissionDeniedError):
        _anthropic(live, clients, restricted).messages.create(
            model="opus", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.PermissionDeniedError):
        _openai(live, clients, restricted).chat.completions.create(
            model="opus", messages=[{"role": "user", "content": "x"}]
        )
    assert (
        _openai(live, clients, restricted)
        .chat.completions.create(model="haiku", messages=[{"role": "user", "content": "x"}])
        .choices
    )


def test_budget_refusal_is_a_429_in_each_format(live: LiveGateway, clients: ExitStack) -> None:
    live.accountant.budgets["developer:alice"] = Decimal("0.000001")
    with pytest.raises(anthropic.RateLimitError, match="budget developer:alice"):
        _anthropic(live, clients).messages.create(
            model="opus", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.RateLimitError) as caught:
        _openai(live, clients).chat.completions.create(
            model="opus", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.response.headers["retry-after"] == "3600"
    assert live.accountant.entries == []
