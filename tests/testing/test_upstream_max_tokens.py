"""The fake upstream honours ``max_tokens``: a scripted reply longer than the request allows
is cut there and says so, in both wire formats, streamed and whole."""

from __future__ import annotations

import json
from typing import Any

import httpx

from orchestra.providers import Usage
from orchestra.providers.sse import SSEParser
from orchestra.testing import FakeUpstream, Reply, ToolCall, parse_script

MODEL = "claude-haiku-4-5"
LONG = "The quick brown fox jumps over the lazy dog. " * 40
HELLO = [{"role": "user", "content": "hi"}]


def _post(up: FakeUpstream, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(up.base_url + path, json=body, timeout=5)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _events(up: FakeUpstream, path: str, body: dict[str, Any]) -> list[Any]:
    with httpx.stream("POST", up.base_url + path, json={**body, "stream": True}) as response:
        parser = SSEParser()
        return [e for chunk in response.iter_raw() for e in parser.feed(chunk)]


def test_anthropic_text_longer_than_max_tokens_is_cut_with_the_stop_reason(
    upstream: FakeUpstream,
) -> None:
    upstream.script(Reply(text=LONG), Reply(text=LONG), Reply(text="short"))
    body = {"model": MODEL, "max_tokens": 20, "messages": HELLO}
    whole = _post(upstream, "/v1/messages", body)
    assert whole["stop_reason"] == "max_tokens"
    assert whole["usage"]["output_tokens"] == 20
    text = whole["content"][0]["text"]
    assert 0 < len(text) < len(LONG) and LONG.startswith(text)

    events = _events(upstream, "/v1/messages", body)
    deltas = [json.loads(e.data) for e in events if e.event == "content_block_delta"]
    streamed = "".join(d["delta"]["text"] for d in deltas)
    assert streamed == text
    [final] = [json.loads(e.data) for e in events if e.event == "message_delta"]
    assert final["delta"]["stop_reason"] == "max_tokens"
    assert final["usage"]["output_tokens"] == 20

    # A reply that fits is untouched.
    fits = _post(upstream, "/v1/messages", body)
    assert fits["stop_reason"] == "end_turn" and fits["content"][0]["text"] == "short"


def test_a_tool_call_cut_short_carries_only_what_was_written(upstream: FakeUpstream) -> None:
    calls = [
        ToolCall("write_file", {"path": "a.txt", "content": "ok"}),
        ToolCall("write_file", {"path": "b.txt", "content": "x = 1\n" * 300}),
        ToolCall("finish", {"summary": "never reached"}),
    ]
    upstream.script(*[Reply(tool_calls=calls)] * 2)
    body = {"model": MODEL, "max_tokens": 60, "messages": HELLO}
    whole = _post(upstream, "/v1/messages", body)
    assert whole["stop_reason"] == "max_tokens"
    blocks = whole["content"]
    assert [b["name"] for b in blocks] == ["write_file", "write_file"]  # finish dropped
    assert blocks[0]["input"] == {"path": "a.txt", "content": "ok"}
    assert blocks[1]["input"] == {"path": "b.txt"}  # content was being written: left out

    events = _events(upstream, "/v1/messages", body)
    partial = "".join(
        json.loads(e.data)["delta"].get("partial_json", "")
        for e in events
        if e.event == "content_block_delta" and json.loads(e.data)["index"] == 1
    )
    assert partial.startswith('{"path":"b.txt","content":"x = 1')
    assert not partial.endswith("}")  # incomplete JSON, as a cut-off model sends it


def test_openai_finish_reason_length_whole_and_streamed(upstream: FakeUpstream) -> None:
    call = ToolCall("write_file", {"path": "b.txt", "content": "y = 2\n" * 300})
    upstream.script(Reply(tool_calls=[call]), Reply(text=LONG))
    body = {"model": "gpt-4o-mini", "max_completion_tokens": 30, "messages": HELLO}
    whole = _post(upstream, "/v1/chat/completions", body)
    choice = whole["choices"][0]
    assert choice["finish_reason"] == "length"
    assert whole["usage"]["completion_tokens"] == 30
    arguments = choice["message"]["tool_calls"][0]["function"]["arguments"]
    assert arguments.startswith('{"path":"b.txt"') and not arguments.endswith("}")

    events = _events(
        upstream,
        "/v1/chat/completions",
        {**body, "max_tokens": 25, "stream_options": {"include_usage": True}},
    )
    chunks = [json.loads(e.data) for e in events if e.data != "[DONE]"]
    reasons = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert reasons[-1] == "length"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert 0 < len(text) < len(LONG) and LONG.startswith(text)


def test_scripted_usage_sets_the_length_that_is_cut(upstream: FakeUpstream) -> None:
    usage = Usage(input_tokens=10, output_tokens=400)
    upstream.script(Reply(text=LONG, usage=usage))
    whole = _post(upstream, "/v1/messages", {"model": MODEL, "max_tokens": 100, "messages": HELLO})
    assert whole["stop_reason"] == "max_tokens" and whole["usage"]["output_tokens"] == 100
    # A quarter of the reply's declared length: about a quarter of its text.
    kept = len(whole["content"][0]["text"]) / len(LONG)
    assert 0.15 < kept < 0.35


def test_raw_arguments_script_malformed_json(upstream: FakeUpstream) -> None:
    [(step, _)] = parse_script(
        [{"reply": {"tool_calls": [{"name": "t", "raw_arguments": '{"a": 1,'}]}}]
    )
    upstream.script(step)
    body = {"model": "gpt-4o-mini", "max_tokens": 100, "messages": HELLO}
    whole = _post(upstream, "/v1/chat/completions", body)
    assert whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"a": 1,'
