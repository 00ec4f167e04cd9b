"""Streams: unknown events pass through untouched; tool calls survive translation both ways."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai

from orchestra.providers import Usage
from orchestra.testing import FakeUpstream, InjectedEvent, Reply, ToolCall
from tests.gateway.conftest import LiveGateway
from tests.polling import eventually

MESSAGES = [{"role": "user", "content": "hello"}]


def test_unknown_stream_events_pass_through_byte_for_byte(
    live: LiveGateway, upstream: FakeUpstream
) -> None:
    novel = json.dumps({"type": "future_event", "payload": {"x": [1, 2, 3]}})
    upstream.script(
        Reply(text="abc", inject=[InjectedEvent(after=2, data=novel, event="future_event")])
    )
    with httpx.stream(
        "POST",
        f"{live.url}/v1/messages",
        json={"model": "haiku", "max_tokens": 10, "messages": MESSAGES, "stream": True},
        headers={"x-api-key": live.key},
    ) as response:
        body = response.read()
    assert response.headers["x-orchestra-served-model"] == "claude-haiku-4-5"
    assert f"event: future_event\ndata: {novel}\n\n".encode() in body
    assert body.index(b"future_event") < body.index(b"message_stop")
    # The entry is stored as the stream ends, which may be just after the client saw its end.
    assert eventually(lambda: bool(live.accountant.entries))
    assert live.accountant.entries[-1].outcome == "ok"


def test_openai_stream_tool_calls_from_an_anthropic_upstream(
    live: LiveGateway, upstream: FakeUpstream
) -> None:
    upstream.script(
        Reply(
            tool_calls=[ToolCall("lookup", {"id": 42, "tags": ["a", "b"]})],
            usage=Usage(input_tokens=30, output_tokens=12),
        )
    )
    name, arguments, usage = "", "", None
    # Closed at the end: an SDK client left to the garbage collector leaks its sockets.
    with openai.OpenAI(base_url=live.url + "/v1", api_key=live.key, max_retries=0) as client:
        stream = client.chat.completions.create(
            model="haiku",
            messages=[{"role": "user", "content": "find 42"}],
            tools=[
                {
                    "type": "function",
                    "function": {"name": "lookup", "parameters": {"type": "object"}},
                }
            ],
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    name += call.function.name or "" if call.function else ""
                    arguments += call.function.arguments or "" if call.function else ""
    assert name == "lookup"
    assert json.loads(arguments) == {"id": 42, "tags": ["a", "b"]}
    assert usage is not None and usage.completion_tokens == 12
    sent = upstream.requests[-1]
    assert sent.path == "/v1/messages" and sent.json["tools"][0]["name"] == "lookup"
    assert eventually(lambda: bool(live.accountant.entries))
    assert live.accountant.entries[-1].usage.output_tokens == 12


def test_anthropic_stream_tool_calls_from_an_openai_upstream(
    live: LiveGateway, upstream: FakeUpstream
) -> None:
    upstream.script(
        Reply(
            tool_calls=[ToolCall("run_tests", {"path": "tests/"})],
            usage=Usage(input_tokens=9, output_tokens=4),
        )
    )
    with (
        anthropic.Anthropic(base_url=live.url, api_key=live.key, max_retries=0) as client,
        client.messages.stream(
            model="qwen-local",
            max_tokens=50,
            messages=MESSAGES,
            tools=[{"name": "run_tests", "input_schema": {"type": "object"}}],
        ) as stream,
    ):
        final = stream.get_final_message()
    [block] = [b for b in final.content if b.type == "tool_use"]
    assert block.name == "run_tests" and block.input == {"path": "tests/"}
    assert final.stop_reason == "tool_use"
    sent = upstream.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json["stream_options"] == {"include_usage": True}
    assert eventually(lambda: bool(live.accountant.entries))
    entry = live.accountant.entries[-1]
    assert entry.usage.output_tokens == 4 and entry.served_model == "qwen-local"
