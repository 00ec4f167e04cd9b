"""Anthropic <-> OpenAI translation: exact mappings, round trips, malformed input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestra.providers import TranslationError, WireFormatError
from orchestra.providers.sse import SSEEvent
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

PNG_B64 = "iVBORw0KGgo="

ANTHROPIC_REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 1024,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop_sequences": ["END"],
    "stream": True,
    "system": [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Answer in English."},
    ],
    "tools": [
        {
            "name": "read_file",
            "description": "Read a file",
            "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
        }
    ],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "metadata": {"user_id": "alice"},
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in a.py?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
                },
                {"type": "image", "source": {"type": "url", "url": "https://x.invalid/i.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "print(1)"},
                {"type": "text", "text": "Explain it."},
            ],
        },
    ],
}

OPENAI_REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "messages": [
        {"role": "system", "content": "You are terse.\n\nAnswer in English."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in a.py?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {"type": "image_url", "image_url": {"url": "https://x.invalid/i.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path":"a"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "print(1)"},
        {"role": "user", "content": "Explain it."},
    ],
    "max_tokens": 1024,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop": ["END"],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
                "description": "Read a file",
            },
        }
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "stream": True,
    "stream_options": {"include_usage": True},
    "user": "alice",
}


def test_anthropic_request_to_openai_exactly() -> None:
    assert anthropic_to_openai_request(ANTHROPIC_REQUEST) == OPENAI_REQUEST


def test_openai_request_to_anthropic_exactly() -> None:
    back = openai_to_anthropic_request(OPENAI_REQUEST)
    assert back == {
        "model": "claude-sonnet-4-6",
        "system": "You are terse.\n\nAnswer in English.",
        "messages": [
            ANTHROPIC_REQUEST["messages"][0],
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    ANTHROPIC_REQUEST["messages"][1]["content"][2],
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "print(1)"},
                    {"type": "text", "text": "Explain it."},
                ],
            },
        ],
        "max_tokens": 1024,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "tools": [
            {
                "name": "read_file",
                "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
                "description": "Read a file",
            }
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "stream": True,
        "metadata": {"user_id": "alice"},
    }


@pytest.mark.parametrize(
    ("anthropic_choice", "openai_choice"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choice_both_ways(anthropic_choice: dict[str, Any], openai_choice: Any) -> None:
    tool = {"name": "f", "input_schema": {"type": "object"}}
    body = {"model": "m", "max_tokens": 5, "messages": [], "tools": [tool]}
    openai_body = anthropic_to_openai_request({**body, "tool_choice": anthropic_choice})
    assert openai_body["tool_choice"] == openai_choice
    assert openai_to_anthropic_request(openai_body)["tool_choice"] == anthropic_choice


def test_openai_specifics_to_anthropic() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "dev rules"}]},
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
        ],
        "temperature": 1.7,
        "stop": "STOP",
        "max_completion_tokens": 77,
    }
    out = openai_to_anthropic_request(body)
    assert out["system"] == "dev rules"
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    assert (out["temperature"], out["stop_sequences"], out["max_tokens"]) == (1.0, ["STOP"], 77)
    assert openai_to_anthropic_request({"model": "m", "messages": []})["max_tokens"] == 4096


def test_claude_code_shaped_request_translates() -> None:
    """Claude Code sends system blocks with cache_control, a system message mid-conversation,
    adaptive thinking and beta fields; the OpenAI side gets what it can use."""
    body = {
        "model": "claude-opus-4-5",
        "max_tokens": 64000,
        "stream": True,
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": '{"session_id":"s"}'},
        "system": [
            {"type": "text", "text": "You are a CLI."},
            {"type": "text", "text": "Be careful.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "system", "content": "Available agent types: reviewer"},
        ],
        "tools": [
            {"name": "Read", "description": "Read a file", "input_schema": {"type": "object"}}
        ],
    }
    out = anthropic_to_openai_request(body)
    assert [m["role"] for m in out["messages"]] == ["system", "user", "system"]
    assert out["messages"][0]["content"] == "You are a CLI.\n\nBe careful."
    assert out["messages"][2]["content"] == "Available agent types: reviewer"
    assert set(out) == {
        "model",
        "messages",
        "max_tokens",
        "tools",
        "stream",
        "stream_options",
        "user",
    }


def test_tool_result_errors_and_images() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "is_error": True,
                        "content": [
                            {"type": "text", "text": "boom"},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": PNG_B64,
                                },
                            },
                        ],
                    }
                ],
            }
        ],
    }
    messages = anthropic_to_openai_request(body)["messages"]
    assert messages[0] == {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"}
    assert messages[1]["role"] == "user"
    assert messages[1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "document"}]}]},
            "document",
        ),
        (
            {
                "model": "m",
                "messages": [],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "server tool",
        ),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "role"),
        ({"model": 3, "messages": []}, "model"),
        ({"model": "m", "messages": "nope"}, "messages"),
    ],
)
def test_untranslatable_anthropic_requests_are_clear_400s(
    body: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(TranslationError) as caught:
        anthropic_to_openai_request(body)
    assert caught.value.status == 400
    assert fragment in caught.value.message
    assert caught.value.hint


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": [], "n": 2},
        {"model": "m", "messages": [], "response_format": {"type": "json_schema"}},
        {"model": "m", "messages": [{"role": "function", "content": "x"}]},
        {
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{bad"},
                        }
                    ],
                }
            ],
        },
        {"model": "m", "messages": [], "tools": [{"type": "function"}]},
    ],
)
def test_untranslatable_openai_requests_are_clear_400s(body: dict[str, Any]) -> None:
    with pytest.raises(TranslationError) as caught:
        openai_to_anthropic_request(body)
    assert caught.value.status == 400


# --- round trips ---------------------------------------------------------------------------

words = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
ids = st.from_regex(r"toolu_[a-z0-9]{4}", fullmatch=True)
json_objects = st.dictionaries(
    st.text(min_size=1, max_size=6),
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    max_size=3,
)
text_block = st.builds(lambda t: {"type": "text", "text": t}, words)
image_block = st.one_of(
    st.builds(
        lambda d: {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": d},
        },
        st.from_regex(r"[A-Za-z0-9+/]{4,12}", fullmatch=True),
    ),
    st.builds(
        lambda u: {"type": "image", "source": {"type": "url", "url": f"https://x.invalid/{u}"}},
        st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    ),
)
tool_use = st.builds(
    lambda i, n, a: {"type": "tool_use", "id": i, "name": n, "input": a},
    ids,
    st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
    json_objects,
)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for turn in range(draw(st.integers(1, 5))):
        if turn % 2 == 0:
            blocks = draw(st.lists(st.one_of(text_block, image_block), min_size=1, max_size=3))
            if turns and any(b["type"] == "tool_use" for b in turns[-1]["content"]):
                results = [
                    {"type": "tool_result", "tool_use_id": b["id"], "content": draw(words)}
                    for b in turns[-1]["content"]
                    if b["type"] == "tool_use"
                ]
                blocks = results + [b for b in blocks if b["type"] == "text"][:1]
            turns.append({"role": "user", "content": blocks})
        else:
            blocks = draw(st.lists(text_block, max_size=1)) + draw(
                st.lists(tool_use, max_size=2, unique_by=lambda b: b["id"])
            )
            turns.append(
                {"role": "assistant", "content": blocks or [{"type": "text", "text": "ok"}]}
            )
    return turns


def normalise(body: dict[str, Any]) -> dict[str, Any]:
    """Merge adjacent text blocks as the OpenAI format does for assistant turns."""
    out = dict(body)
    messages = []
    for message in body["messages"]:
        blocks: list[dict[str, Any]] = []
        for block in message["content"]:
            if (
                message["role"] == "assistant"
                and block["type"] == "text"
                and blocks
                and blocks[-1]["type"] == "text"
            ):
                blocks[-1] = {"type": "text", "text": blocks[-1]["text"] + block["text"]}
            else:
                blocks.append(block)
        messages.append({"role": message["role"], "content": blocks})
    out["messages"] = messages
    return out


@settings(max_examples=150, deadline=None)
@given(
    conversations(),
    st.none() | words,
    st.integers(1, 100_000),
    st.none() | st.floats(0, 1),
    st.lists(words, max_size=2),
    st.booleans(),
)
def test_anthropic_request_round_trip(
    messages: list[dict[str, Any]],
    system: str | None,
    max_tokens: int,
    temperature: float | None,
    stops: list[str],
    stream: bool,
) -> None:
    body: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "messages": messages,
        "max_tokens": max_tokens,
    }
    if system:
        body["system"] = system
    if temperature is not None:
        body["temperature"] = temperature
    if stops:
        body["stop_sequences"] = stops
    if stream:
        body["stream"] = True
    back = openai_to_anthropic_request(anthropic_to_openai_request(body))
    assert normalise(back) == normalise(body)


@settings(max_examples=100, deadline=None)
@given(
    st.none() | words,
    st.lists(st.tuples(st.from_regex(r"[a-z]{1,8}", fullmatch=True), json_objects), max_size=3),
    st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)
def test_openai_response_round_trip(
    text: str | None,
    calls: list[tuple[str, dict[str, Any]]],
    finish: str,
    prompt: int,
    completion: int,
    cached: int,
) -> None:
    cached = min(cached, prompt)
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": n,
                    "arguments": json.dumps(a, separators=(",", ":"), ensure_ascii=False),
                },
            }
            for i, (n, a) in enumerate(calls)
        ]
    if finish == "tool_calls" and not calls:
        finish = "stop"
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 5,
        "model": "llama",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }
    anthropic_body = openai_to_anthropic_response(body)
    back = anthropic_to_openai_response(anthropic_body, created=5)
    # A "stop" after tool calls is reported as tool_use (some local servers say "stop").
    expected_finish = "tool_calls" if calls and finish == "stop" else finish
    assert back["choices"][0]["finish_reason"] == expected_finish
    assert back["choices"][0]["message"]["content"] == (text or (None if calls else ""))
    assert back["choices"][0]["message"].get("tool_calls", []) == message.get("tool_calls", [])
    assert back["usage"]["prompt_tokens"] == prompt
    assert back["usage"]["completion_tokens"] == completion
    assert back["usage"]["prompt_tokens_details"]["cached_tokens"] == cached
    assert anthropic_body["usage"]["input_tokens"] == prompt - cached


def test_anthropic_response_to_openai_drops_thinking() -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [
            {"type": "thinking", "thinking": "secret", "signature": "s"},
            {"type": "text", "text": "answer"},
        ],
        "stop_reason": "max_tokens",
        "usage": {
            "input_tokens": 3,
            "output_tokens": 4,
            "cache_read_input_tokens": 5,
            "cache_creation_input_tokens": 6,
        },
    }
    out = anthropic_to_openai_response(body, created=1)
    assert out["choices"][0]["message"]["content"] == "answer"
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"] == {
        "prompt_tokens": 14,
        "completion_tokens": 4,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 5},
    }


# --- errors --------------------------------------------------------------------------------


def test_errors_both_ways() -> None:
    status, body = anthropic_error_to_openai(
        529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    assert status == 503
    assert body["error"]["message"] == "Overloaded"
    assert body["error"]["type"] == "server_error"
    status, body = anthropic_error_to_openai(
        429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
    )
    assert (status, body["error"]["type"], body["error"]["code"]) == (
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
    )
    status, body = openai_error_to_anthropic(
        401, {"error": {"message": "bad key", "type": "invalid_request_error", "code": "x"}}
    )
    assert (status, body) == (
        401,
        {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}},
    )
    # Ollama's bare-string errors and non-JSON bodies still give a proper error.
    assert openai_error_to_anthropic(404, {"error": "model 'x' not found"})[1]["error"] == {
        "type": "not_found_error",
        "message": "model 'x' not found",
    }
    assert openai_error_to_anthropic(502, b"<html>bad gateway</html>")[1]["error"]["message"]


# --- malformed input -----------------------------------------------------------------------

anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "model",
                    "messages",
                    "role",
                    "content",
                    "type",
                    "text",
                    "tool_calls",
                    "function",
                    "arguments",
                    "name",
                    "id",
                    "input",
                    "source",
                    "tools",
                    "system",
                    "choices",
                    "message",
                    "usage",
                    "delta",
                    "index",
                    "finish_reason",
                    "tool_choice",
                    "image_url",
                    "url",
                    "data",
                    "media_type",
                    "tool_use_id",
                    "stop",
                    "max_tokens",
                    "stream",
                    "n",
                    "content_block",
                    "partial_json",
                    "stop_reason",
                    "error",
                    "input_schema",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(anything)
def test_random_input_raises_only_translation_errors(value: Any) -> None:
    for translate in (
        anthropic_to_openai_request,
        openai_to_anthropic_request,
        openai_to_anthropic_response,
        anthropic_to_openai_response,
    ):
        try:
            out = translate(value)
        except WireFormatError as exc:
            assert exc.status in (400, 502)
        else:
            assert isinstance(out, dict)
    for status in (400, 429, 500):
        assert anthropic_error_to_openai(status, value)[0] >= 400
        assert openai_error_to_anthropic(status, value)[1]["type"] == "error"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.none()
            | st.sampled_from(
                ["message_start", "content_block_delta", "message_delta", "error", "x"]
            ),
            anything.map(lambda v: json.dumps(v)) | st.text(max_size=10),
        ),
        max_size=8,
    )
)
def test_random_streams_raise_only_translation_errors(events: list[tuple[str | None, str]]) -> None:
    for translator in (OpenAIToAnthropicStream(), AnthropicToOpenAIStream()):
        try:
            for name, data in events:
                for out in translator.feed(SSEEvent(name, data)):
                    assert isinstance(out.data, str)
            translator.finish()
        except WireFormatError as exc:
            assert exc.status == 502


@st.composite
def openai_conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """OpenAI histories in the canonical shape (alternating, tool replies after calls)."""
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(words)})
    for turn in range(draw(st.integers(1, 6))):
        if turn % 2 == 0:
            messages.append({"role": "user", "content": draw(words)})
            continue
        calls = [
            {
                "id": f"call_{turn}_{i}",
                "type": "function",
                "function": {
                    "name": draw(st.from_regex(r"[a-z_]{1,8}", fullmatch=True)),
                    "arguments": json.dumps(
                        draw(json_objects), separators=(",", ":"), ensure_ascii=False
                    ),
                },
            }
            for i in range(draw(st.integers(0, 2)))
        ]
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": draw(words) if not calls or draw(st.booleans()) else None,
        }
        if calls:
            assistant["tool_calls"] = calls
        messages.append(assistant)
        messages.extend(
            {"role": "tool", "tool_call_id": call["id"], "content": draw(words)} for call in calls
        )
    return messages


@settings(max_examples=150, deadline=None)
@given(
    openai_conversations(),
    st.integers(1, 10_000),
    st.none() | st.floats(0, 1),
    st.lists(words, min_size=1, max_size=2) | st.none(),
    st.booleans(),
)
def test_openai_request_round_trip(
    messages: list[dict[str, Any]],
    max_tokens: int,
    temperature: float | None,
    stop: list[str] | None,
    stream: bool,
) -> None:
    body: dict[str, Any] = {"model": "llama3.1:8b", "messages": messages, "max_tokens": max_tokens}
    if temperature is not None:
        body["temperature"] = temperature
    if stop:
        body["stop"] = stop
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    assert anthropic_to_openai_request(openai_to_anthropic_request(body)) == body


def test_deeply_nested_input_is_a_clear_error_not_a_crash() -> None:
    nested: Any = {}
    for _ in range(5000):
        nested = {"a": nested}
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": nested}],
            }
        ],
    }
    with pytest.raises(TranslationError) as caught:
        anthropic_to_openai_request(body)
    assert caught.value.status == 400


def test_tool_calls_without_index_are_told_apart_by_id() -> None:
    """Some OpenAI-compatible servers send whole tool calls without an index."""
    translator = OpenAIToAnthropicStream(model="m")
    chunks = [
        {
            "id": "c",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "id": "call_a",
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"x":1}'},
                            }
                        ]
                    },
                }
            ],
        },
        {
            "id": "c",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "id": "call_b",
                                "type": "function",
                                "function": {"name": "g", "arguments": "{"},
                            }
                        ]
                    },
                }
            ],
        },
        {
            "id": "c",
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"function": {"arguments": '"y":2}'}}]}}
            ],
        },
        {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    events = [e for c in chunks for e in translator.feed(SSEEvent(None, json.dumps(c)))]
    events += translator.feed(SSEEvent(None, "[DONE]"))
    starts = [e.json()["content_block"] for e in events if e.event == "content_block_start"]
    assert [(b["id"], b["name"]) for b in starts] == [("call_a", "f"), ("call_b", "g")]
    deltas = [e.json() for e in events if e.event == "content_block_delta"]
    assert [(d["index"], d["delta"]["partial_json"]) for d in deltas] == [
        (0, '{"x":1}'),
        (1, "{"),
        (1, '"y":2}'),
    ]
    assert events[-2].json()["delta"]["stop_reason"] == "tool_use"
