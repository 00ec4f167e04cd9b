"""Stream translators as properties: any reply, streamed in any pieces, survives translation
to the other format and back with its text, tool calls, stop reason and usage."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestra.providers.sse import SSEEvent, SSEParser
from orchestra.providers.translate import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from orchestra.providers.usage import Usage
from orchestra.testing.render import IdSource, anthropic_events, openai_chunks
from orchestra.testing.steps import Reply, ToolCall


def accumulate_anthropic(events: list[SSEEvent]) -> dict[str, Any]:
    """Build the final message from Anthropic events, as a client does."""
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    names = [e.event for e in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    for event in events:
        data = event.json()
        assert data["type"] == event.event
        if event.event == "message_start":
            message = data["message"]
        elif event.event == "content_block_start":
            assert data["index"] not in blocks  # blocks are opened once, in order
            assert data["index"] == len(blocks)
            blocks[data["index"]] = dict(data["content_block"])
        elif event.event == "content_block_delta":
            block = blocks[data["index"]]
            delta = data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif event.event == "message_delta":
            message["stop_reason"] = data["delta"]["stop_reason"]
            message["usage"].update(data["usage"])
    for index, raw in partial.items():
        blocks[index]["input"] = json.loads(raw)
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


def accumulate_openai(events: list[SSEEvent]) -> dict[str, Any]:
    """Build the final completion from OpenAI chunks, as a client does."""
    assert events[-1].data == "[DONE]"
    text = ""
    calls: dict[int, dict[str, str]] = {}
    finish = None
    usage = None
    for event in events[:-1]:
        chunk = event.json()
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                entry = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                entry["id"] = call.get("id") or entry["id"]
                entry["name"] = (call.get("function") or {}).get("name") or entry["name"]
                entry["arguments"] += (call.get("function") or {}).get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {
        "text": text,
        "calls": [calls[i] for i in sorted(calls)],
        "finish": finish,
        "usage": usage,
    }


def reparse(events: list[bytes], cuts: list[int]) -> list[SSEEvent]:
    stream = b"".join(events)
    parser = SSEParser()
    out: list[SSEEvent] = []
    position = 0
    for cut in sorted(cuts):
        out += parser.feed(stream[position:cut])
        position = max(position, cut)
    return out + parser.feed(stream[position:]) + parser.finish()


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
inputs = st.dictionaries(
    st.text(min_size=1, max_size=5),
    st.integers() | st.text(max_size=12) | st.lists(st.booleans(), max_size=3),
    max_size=3,
)
calls = st.lists(
    st.builds(ToolCall, st.from_regex(r"[a-z_]{1,8}", fullmatch=True), inputs), max_size=3
)
usages = st.builds(
    Usage,
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)


@settings(max_examples=120, deadline=None)
@given(texts, calls, usages, st.integers(1, 20), st.lists(st.integers(0, 5000), max_size=12))
def test_anthropic_stream_through_openai_and_back(
    text: str, tool_calls: list[ToolCall], usage: Usage, chunk: int, cuts: list[int]
) -> None:
    reply = Reply(text=text, tool_calls=tool_calls, usage=usage, chunk_chars=chunk)
    upstream = reparse(anthropic_events(reply, "claude-haiku-4-5", usage, IdSource()), cuts)
    to_openai = AnthropicToOpenAIStream(model="gpt-x", include_usage=True, created=1)
    openai_events: list[SSEEvent] = []
    for event in upstream:
        openai_events += to_openai.feed(event)
    openai_events += to_openai.finish()
    completion = accumulate_openai(openai_events)
    assert completion["text"] == text
    assert [(c["name"], json.loads(c["arguments"])) for c in completion["calls"]] == [
        (c.name, c.input) for c in tool_calls
    ]
    assert completion["finish"] == ("tool_calls" if tool_calls else "stop")
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    assert completion["usage"]["prompt_tokens"] == prompt
    assert completion["usage"]["prompt_tokens_details"]["cached_tokens"] == usage.cache_read_tokens

    back = OpenAIToAnthropicStream(model="claude-haiku-4-5", input_tokens=5)
    anthropic_out: list[SSEEvent] = []
    for event in openai_events:
        anthropic_out += back.feed(event)
    anthropic_out += back.finish()
    message = accumulate_anthropic(anthropic_out)
    got_text = "".join(b["text"] for b in message["content"] if b["type"] == "text")
    assert got_text == text
    assert [(b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"] == [
        (c.name, c.input) for c in tool_calls
    ]
    assert message["stop_reason"] == ("tool_use" if tool_calls else "end_turn")
    # Cache writes have no OpenAI field: they come back as ordinary input tokens.
    assert message["usage"]["input_tokens"] == usage.input_tokens + usage.cache_write_tokens
    assert message["usage"]["cache_read_input_tokens"] == usage.cache_read_tokens
    assert message["usage"]["output_tokens"] == usage.output_tokens


@settings(max_examples=120, deadline=None)
@given(texts, calls, usages, st.integers(1, 20), st.booleans())
def test_openai_stream_to_anthropic(
    text: str, tool_calls: list[ToolCall], usage: Usage, chunk: int, include_usage: bool
) -> None:
    reply = Reply(text=text, tool_calls=tool_calls, usage=usage, chunk_chars=chunk)
    encoded = openai_chunks(reply, "llama", usage, IdSource(), 1, include_usage)
    translator = OpenAIToAnthropicStream(model="claude-haiku-4-5", input_tokens=77)
    out: list[SSEEvent] = []
    for event in reparse(encoded, []):
        out += translator.feed(event)
    out += translator.finish()
    message = accumulate_anthropic(out)
    assert "".join(b["text"] for b in message["content"] if b["type"] == "text") == text
    assert [b["input"] for b in message["content"] if b["type"] == "tool_use"] == [
        c.input for c in tool_calls
    ]
    if include_usage:
        assert message["usage"]["output_tokens"] == usage.output_tokens
        assert message["usage"]["cache_read_input_tokens"] == usage.cache_read_tokens
    else:
        # No usage from the upstream: the input estimate and an output estimate, never zero.
        assert message["usage"]["input_tokens"] == 77
        assert message["usage"]["output_tokens"] >= 0
