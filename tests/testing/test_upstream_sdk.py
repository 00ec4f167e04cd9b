"""The fake upstream speaks the real wire formats: the official SDKs are its clients."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from orchestra.providers import Usage
from orchestra.providers.sse import SSEParser
from orchestra.testing import FakeUpstream, Fault, Reply, ToolCall

MODEL = "claude-sonnet-4-6"
GPT = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def claude(upstream: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=upstream.base_url, api_key="sk-test", max_retries=0) as c:
        yield c


@pytest.fixture
def gpt(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=upstream.base_url + "/v1", api_key="sk-test", max_retries=0
    ) as client:
        yield client


CACHED = Usage(input_tokens=11, output_tokens=7, cache_read_tokens=5, cache_write_tokens=3)


def test_anthropic_non_streaming_text_and_usage(
    upstream: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    upstream.script(Reply(text="scripted answer", usage=CACHED))
    message = claude.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    assert message.content[0].type == "text"
    assert message.content[0].text == "scripted answer"
    assert message.model == MODEL
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 11
    assert message.usage.output_tokens == 7
    assert message.usage.cache_read_input_tokens == 5
    assert message.usage.cache_creation_input_tokens == 3
    (request,) = upstream.requests
    assert request.path == "/v1/messages"
    # Depending on the SDK version the key travels as x-api-key or as a bearer token.
    sent = request.headers.get("x-api-key") or request.headers["authorization"].removeprefix(
        "Bearer "
    )
    assert sent == "sk-test"
    assert "anthropic-version" in request.headers
    assert request.json["messages"] == HELLO


def test_anthropic_stream_event_sequence_and_accumulation(
    upstream: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    reply = Reply(
        text="streamed text in pieces",
        thinking="let me think",
        tool_calls=[ToolCall("lookup", {"q": "weather", "n": [1, 2]})],
        usage=CACHED,
        chunk_chars=5,
    )
    upstream.script(reply, reply)
    client = claude
    raw = client.messages.create(model=MODEL, max_tokens=50, messages=HELLO, stream=True)
    kinds = [event.type for event in raw]
    with client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as stream:
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert kinds.count("content_block_start") == 3 == kinds.count("content_block_stop")
    assert [block.type for block in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].thinking == "let me think"
    assert final.content[1].text == "streamed text in pieces"
    assert final.content[2].input == {"q": "weather", "n": [1, 2]}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 7
    assert final.usage.cache_read_input_tokens == 5


def test_anthropic_raw_stream_matches_the_documented_sequence(upstream: FakeUpstream) -> None:
    upstream.script(Reply(text="abcdefgh", tool_calls=[ToolCall("t", {"a": 1})], chunk_chars=4))
    body = {"model": MODEL, "max_tokens": 50, "messages": HELLO, "stream": True}
    with httpx.stream("POST", upstream.base_url + "/v1/messages", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        parser = SSEParser()
        events = [e for chunk in response.iter_raw() for e in parser.feed(chunk)]
    names = [e.event for e in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    # Every event's data carries its own name as "type", as the API does.
    assert all(e.json()["type"] == e.event for e in events)
    assert events[6].json()["content_block"]["type"] == "tool_use"
    assert events[7].json()["delta"]["type"] == "input_json_delta"


def test_anthropic_tool_use_non_streaming(
    upstream: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    upstream.script(Reply(tool_calls=[ToolCall("read_file", {"path": "a.py"}, id="toolu_1")]))
    message = claude.messages.create(
        model=MODEL,
        max_tokens=50,
        messages=HELLO,
        tools=[{"name": "read_file", "input_schema": {"type": "object"}}],
    )
    (block,) = message.content
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == ("toolu_1", "read_file", {"path": "a.py"})
    assert message.stop_reason == "tool_use"


def test_anthropic_async_streaming(upstream: FakeUpstream) -> None:
    upstream.script(Reply(text="async hello"))

    async def run() -> str:
        client = anthropic.AsyncAnthropic(base_url=upstream.base_url, api_key="k", max_retries=0)
        async with client.messages.stream(model=MODEL, max_tokens=5, messages=HELLO) as s:
            text = await s.get_final_text()
        await client.close()
        return text

    assert asyncio.run(run()) == "async hello"


def test_count_tokens_and_models(
    upstream: FakeUpstream, claude: anthropic.Anthropic, gpt: openai.OpenAI
) -> None:
    client = claude
    counted = client.messages.count_tokens(model=MODEL, messages=HELLO)
    longer = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "hello " * 400}]
    )
    assert 0 < counted.input_tokens < longer.input_tokens
    assert MODEL in [m.id for m in client.models.list()]
    assert GPT in [m.id for m in gpt.models.list()]


def test_default_reply_usage_grows_with_request(
    upstream: FakeUpstream, claude: anthropic.Anthropic
) -> None:
    client = claude
    small = client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
    big = client.messages.create(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "word " * 1000}]
    )
    assert small.content[0].text  # deterministic default text
    assert big.usage.input_tokens > small.usage.input_tokens + 500


def test_openai_non_streaming_with_tool_calls_and_cached_tokens(
    upstream: FakeUpstream, gpt: openai.OpenAI
) -> None:
    upstream.script(Reply(text="", tool_calls=[ToolCall("search", {"q": "x"})], usage=CACHED))
    completion = gpt.chat.completions.create(model=GPT, messages=HELLO)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "search"
    assert call.function.arguments == '{"q":"x"}'
    assert completion.usage is not None
    # OpenAI counts cached (and here cache-written) tokens inside prompt_tokens.
    assert completion.usage.prompt_tokens == 11 + 5 + 3
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 5
    assert upstream.requests[0].path == "/v1/chat/completions"


def test_openai_stream_with_usage_and_tool_call_deltas(
    upstream: FakeUpstream, gpt: openai.OpenAI
) -> None:
    upstream.script(
        Reply(text="partial answer", tool_calls=[ToolCall("f", {"k": "v" * 40})], usage=CACHED)
    )
    stream = gpt.chat.completions.create(
        model=GPT, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    arguments = "".join(
        call.function.arguments or ""
        for c in chunks
        if c.choices
        for call in c.choices[0].delta.tool_calls or []
        if call.function
    )
    assert text == "partial answer"
    assert arguments == '{"k":"' + "v" * 40 + '"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_stream_without_include_usage_has_no_usage(
    upstream: FakeUpstream, gpt: openai.OpenAI
) -> None:
    chunks = list(gpt.chat.completions.create(model=GPT, messages=HELLO, stream=True))
    assert chunks and all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_async_client(upstream: FakeUpstream, gpt: openai.OpenAI) -> None:
    upstream.script(Reply(text="async gpt"))

    async def run() -> str | None:
        client = openai.AsyncOpenAI(base_url=upstream.base_url + "/v1", api_key="k", max_retries=0)
        completion = await client.chat.completions.create(model=GPT, messages=HELLO)
        await client.close()
        return completion.choices[0].message.content

    assert asyncio.run(run()) == "async gpt"


@pytest.mark.parametrize(
    ("status", "anthropic_error", "openai_error"),
    [
        (400, anthropic.BadRequestError, openai.BadRequestError),
        (401, anthropic.AuthenticationError, openai.AuthenticationError),
        (403, anthropic.PermissionDeniedError, openai.PermissionDeniedError),
        (404, anthropic.NotFoundError, openai.NotFoundError),
        (429, anthropic.RateLimitError, openai.RateLimitError),
        (500, anthropic.InternalServerError, openai.InternalServerError),
        (529, anthropic.OverloadedError, openai.InternalServerError),
    ],
)
def test_faults_raise_the_sdk_error_classes(
    upstream: FakeUpstream,
    status: int,
    anthropic_error: type[Exception],
    openai_error: type[Exception],
    claude: anthropic.Anthropic,
    gpt: openai.OpenAI,
) -> None:
    upstream.script(Fault(status, retry_after=3), Fault(status, retry_after=3))
    with pytest.raises(anthropic_error) as caught:
        claude.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
    error = caught.value
    assert isinstance(error, anthropic.APIStatusError)
    assert error.status_code == status
    assert error.response.headers["retry-after"] == "3"
    assert isinstance(error.body, dict)
    assert error.body["type"] == "error"
    assert error.body["error"]["type"] == anthropic_wire_type(status)
    with pytest.raises(openai_error) as caught_openai:
        gpt.chat.completions.create(model=GPT, messages=HELLO)
    assert isinstance(caught_openai.value, openai.APIStatusError)
    assert caught_openai.value.status_code == status
    body = caught_openai.value.body
    assert isinstance(body, dict) and set(body) >= {"message", "type", "code"}


def anthropic_wire_type(status: int) -> str:
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }[status]


def test_required_api_key() -> None:
    with FakeUpstream.start(api_key="right") as up:
        with (
            anthropic.Anthropic(base_url=up.base_url, api_key="wrong", max_retries=0) as bad,
            pytest.raises(anthropic.AuthenticationError),
        ):
            bad.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
        with anthropic.Anthropic(base_url=up.base_url, api_key="right", max_retries=0) as good:
            assert good.messages.create(model=MODEL, max_tokens=5, messages=HELLO).content
        with openai.OpenAI(base_url=up.base_url + "/v1", api_key="right", max_retries=0) as bearer:
            assert bearer.chat.completions.create(model=GPT, messages=HELLO).choices


def test_async_context_manager_and_injected_clock() -> None:
    async def run() -> tuple[int, str | None]:
        async with FakeUpstream.start(clock=lambda: 1_700_000_123.0) as up:
            up.script(Reply(text="clocked"))
            async with openai.AsyncOpenAI(
                base_url=up.base_url + "/v1", api_key="k", max_retries=0
            ) as client:
                completion = await client.chat.completions.create(model=GPT, messages=HELLO)
        return completion.created, completion.choices[0].message.content

    assert asyncio.run(run()) == (1_700_000_123, "clocked")
