"""Translated replies consumed by the official SDKs: a client of one format, an upstream of
the other (the fake), and the translators in between (served through a mock transport)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from orchestra.providers.sse import SSEEvent, SSEParser, encode_event
from orchestra.providers.translate import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    anthropic_error_to_openai,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    openai_error_to_anthropic,
    openai_to_anthropic_request,
    openai_to_anthropic_response,
)
from orchestra.providers.usage import Usage
from orchestra.testing import DropMidStream, FakeUpstream, Fault, Reply, ToolCall

from .conftest import stream_events

CLAUDE = "claude-haiku-4-5"
GPT = "gpt-4o-mini"
USAGE = Usage(input_tokens=40, output_tokens=12, cache_read_tokens=8)
REPLY = Reply(
    text="Reading both files now.",
    tool_calls=[ToolCall("read_file", {"path": "a.py"}), ToolCall("read_file", {"path": "b" * 50})],
    usage=USAGE,
    chunk_chars=7,
)
ANTHROPIC_BODY: dict[str, Any] = {
    "model": CLAUDE,
    "max_tokens": 100,
    "system": "be brief",
    "messages": [{"role": "user", "content": "read a.py and b"}],
    "tools": [{"name": "read_file", "input_schema": {"type": "object"}}],
}


def serve(status: int, content: bytes, stream: bool) -> httpx2.MockTransport:
    kind = "text/event-stream" if stream else "application/json"

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": kind}, content=content)

    return httpx2.MockTransport(handler)


def claude_client(transport: httpx2.MockTransport) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="k", max_retries=0, http_client=httpx2.Client(transport=transport)
    )


def gpt_client(transport: httpx2.MockTransport) -> openai.OpenAI:
    return openai.OpenAI(api_key="k", max_retries=0, http_client=httpx2.Client(transport=transport))


def test_anthropic_sdk_streams_a_translated_openai_upstream(upstream: FakeUpstream) -> None:
    upstream.script(REPLY)
    request = anthropic_to_openai_request({**ANTHROPIC_BODY, "stream": True})
    translator = OpenAIToAnthropicStream(model=CLAUDE, input_tokens=30)
    relayed = b""
    for event in stream_events(upstream, "/v1/chat/completions", request):
        relayed += b"".join(encode_event(e.event, e.data) for e in translator.feed(event))
    relayed += b"".join(encode_event(e.event, e.data) for e in translator.finish())
    with (
        claude_client(serve(200, relayed, stream=True)) as client,
        client.messages.stream(**ANTHROPIC_BODY) as stream,
    ):
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[0].text == "Reading both files now."
    assert final.content[2].input == {"path": "b" * 50}
    assert final.stop_reason == "tool_use"
    assert final.model == CLAUDE
    # The final message_delta carries the upstream's real counts, cached tokens apart.
    assert (final.usage.input_tokens, final.usage.output_tokens) == (40, 12)
    assert final.usage.cache_read_input_tokens == 8
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}


def test_openai_sdk_streams_a_translated_anthropic_upstream(upstream: FakeUpstream) -> None:
    upstream.script(REPLY)
    openai_body = {
        "model": GPT,
        "messages": [{"role": "user", "content": "read"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    request = openai_to_anthropic_request(openai_body)
    translator = AnthropicToOpenAIStream(model=GPT, include_usage=True)
    relayed = b""
    for event in stream_events(upstream, "/v1/messages", request):
        relayed += b"".join(encode_event(e.event, e.data) for e in translator.feed(event))
    relayed += b"".join(encode_event(e.event, e.data) for e in translator.finish())
    with gpt_client(serve(200, relayed, stream=True)) as client:
        chunks = list(client.chat.completions.create(**openai_body))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
            if call.function and call.function.name:
                entry["name"] = call.function.name
            if call.function and call.function.arguments:
                entry["arguments"] += call.function.arguments
    assert text == "Reading both files now."
    assert calls == {
        0: {"name": "read_file", "arguments": '{"path":"a.py"}'},
        1: {"name": "read_file", "arguments": '{"path":"' + "b" * 50 + '"}'},
    }
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (48, 12)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_non_streaming_translations_parse_in_the_sdks(upstream: FakeUpstream) -> None:
    upstream.script(REPLY, REPLY)
    completion = httpx.post(
        upstream.base_url + "/v1/chat/completions",
        json=anthropic_to_openai_request(ANTHROPIC_BODY),
        timeout=5,
    ).json()
    as_anthropic = openai_to_anthropic_response(completion, model=CLAUDE)
    with claude_client(serve(200, httpx.Response(200, json=as_anthropic).content, False)) as c:
        message = c.messages.create(**ANTHROPIC_BODY)
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.usage.cache_read_input_tokens == 8
    message_body = httpx.post(
        upstream.base_url + "/v1/messages", json=ANTHROPIC_BODY, timeout=5
    ).json()
    as_openai = anthropic_to_openai_response(message_body, model=GPT)
    with gpt_client(serve(200, httpx.Response(200, json=as_openai).content, False)) as g:
        chat = g.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x"}])
    assert chat.choices[0].message.content == "Reading both files now."
    assert len(chat.choices[0].message.tool_calls or []) == 2


@pytest.mark.parametrize(
    ("status", "anthropic_class", "openai_class"),
    [
        (401, anthropic.AuthenticationError, openai.AuthenticationError),
        (403, anthropic.PermissionDeniedError, openai.PermissionDeniedError),
        (429, anthropic.RateLimitError, openai.RateLimitError),
        (500, anthropic.InternalServerError, openai.InternalServerError),
        (529, anthropic.OverloadedError, openai.InternalServerError),
    ],
)
def test_translated_errors_raise_the_right_sdk_classes(
    upstream: FakeUpstream,
    status: int,
    anthropic_class: type[Exception],
    openai_class: type[Exception],
) -> None:
    upstream.script(Fault(status), Fault(status))
    openai_error = httpx.post(
        upstream.base_url + "/v1/chat/completions",
        json={"model": GPT, "messages": []},
        timeout=5,
    )
    out_status, body = openai_error_to_anthropic(openai_error.status_code, openai_error.json())
    with (
        claude_client(serve(out_status, httpx.Response(200, json=body).content, False)) as c,
        pytest.raises(anthropic_class),
    ):
        c.messages.create(**ANTHROPIC_BODY)
    anthropic_error = httpx.post(upstream.base_url + "/v1/messages", json=ANTHROPIC_BODY)
    out_status, body = anthropic_error_to_openai(
        anthropic_error.status_code, anthropic_error.json()
    )
    with (
        gpt_client(serve(out_status, httpx.Response(200, json=body).content, False)) as g,
        pytest.raises(openai_class),
    ):
        g.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "x"}])


def test_cut_upstream_stream_ends_with_an_error_event(upstream: FakeUpstream) -> None:
    upstream.script(DropMidStream(after_events=3, reply=REPLY))
    request = anthropic_to_openai_request({**ANTHROPIC_BODY, "stream": True})
    translator = OpenAIToAnthropicStream(model=CLAUDE)
    out: list[SSEEvent] = []
    parser = SSEParser()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", upstream.base_url + "/v1/chat/completions", json=request) as response,
    ):
        for chunk in response.iter_raw():
            for event in parser.feed(chunk):
                out += translator.feed(event)
    out += translator.finish()
    assert out[0].event == "message_start"
    assert out[-1].event == "error"
    assert out[-1].json()["error"]["type"] == "api_error"
    assert "message_stop" not in [e.event for e in out]
    relayed = b"".join(encode_event(e.event, e.data) for e in out)
    with (
        claude_client(serve(200, relayed, stream=True)) as client,
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(**ANTHROPIC_BODY) as stream,
    ):
        stream.get_final_message()
