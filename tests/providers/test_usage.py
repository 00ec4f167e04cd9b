"""Usage extraction from both formats, whole and streamed, against the fake upstream."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestra.providers import Usage, WireFormatError
from orchestra.providers import anthropic as anthropic_wire
from orchestra.providers import openai as openai_wire
from orchestra.providers.sse import SSEEvent, SSEParser
from orchestra.testing import DropMidStream, FakeUpstream, Reply

from .conftest import stream_events

USAGE = Usage(input_tokens=120, output_tokens=45, cache_read_tokens=300, cache_write_tokens=80)
BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,  # above the scripted output, so no reply is cut
    "messages": [{"role": "user", "content": "x"}],
}


def test_anthropic_message_usage(upstream: FakeUpstream) -> None:
    upstream.script(Reply(text="a", usage=USAGE))
    body = httpx.post(upstream.base_url + "/v1/messages", json=BODY, timeout=5).json()
    assert anthropic_wire.usage_from_message(body) == USAGE


def test_anthropic_stream_tracker(upstream: FakeUpstream) -> None:
    upstream.script(Reply(text="hello world", usage=USAGE))
    tracker = anthropic_wire.StreamUsageTracker()
    for event in stream_events(upstream, "/v1/messages", {**BODY, "stream": True}):
        tracker.feed(event)
    assert tracker.usage == USAGE
    assert tracker.usage_so_far() == USAGE
    assert (tracker.finished, tracker.stop_reason, tracker.model) == (
        True,
        "end_turn",
        "claude-haiku-4-5",
    )


def test_anthropic_tracker_estimates_output_of_a_cut_stream(upstream: FakeUpstream) -> None:
    upstream.script(DropMidStream(after_events=8, reply=Reply(text="z" * 400, usage=USAGE)))
    tracker = anthropic_wire.StreamUsageTracker()
    parser = SSEParser()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST", upstream.base_url + "/v1/messages", json={**BODY, "stream": True}
        ) as response,
    ):
        for chunk in response.iter_raw():
            for event in parser.feed(chunk):
                tracker.feed(event)
    assert not tracker.finished and not tracker.delta_seen
    so_far = tracker.usage_so_far()
    # message_start gave the input side; 5 deltas of 16 characters streamed before the cut.
    assert so_far.input_tokens == 120 and so_far.cache_read_tokens == 300
    assert so_far.output_tokens == (5 * 16 + 3) // 4


def test_message_delta_usage_is_cumulative_and_partial() -> None:
    tracker = anthropic_wire.StreamUsageTracker()
    tracker.feed_json(
        {
            "type": "message_start",
            "message": {"id": "m", "usage": {"input_tokens": 10, "output_tokens": 1}},
        }
    )
    tracker.feed_json({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 5}})
    tracker.feed_json({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 9}})
    assert tracker.usage == Usage(input_tokens=10, output_tokens=9)
    tracker.feed(SSEEvent("some_future_event", "not even json"))  # ignored, not rejected


def test_openai_completion_and_stream_usage_subtract_cached(upstream: FakeUpstream) -> None:
    upstream.script(Reply(text="a", usage=USAGE), Reply(text="b", usage=USAGE))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    completion = httpx.post(upstream.base_url + "/v1/chat/completions", json=body, timeout=5).json()
    # OpenAI has no cache-write notion: those tokens come back as ordinary input.
    expected = Usage(input_tokens=200, output_tokens=45, cache_read_tokens=300)
    assert openai_wire.usage_from_completion(completion) == expected
    tracker = openai_wire.StreamUsageTracker()
    events = stream_events(
        upstream,
        "/v1/chat/completions",
        {**body, "stream": True, "stream_options": {"include_usage": True}},
    )
    for event in events:
        tracker.feed(event)
    assert tracker.done and tracker.finish_reason == "stop"
    assert tracker.usage == expected
    assert [openai_wire.usage_from_chunk(e.json()) for e in events[:-2]] == [None] * (
        len(events) - 2
    )


def test_openai_stream_without_usage_is_estimated() -> None:
    tracker = openai_wire.StreamUsageTracker()
    tracker.feed_json({"id": "c", "choices": [{"index": 0, "delta": {"content": "x" * 40}}]})
    assert tracker.usage is None
    assert tracker.usage_so_far(input_estimate=7) == Usage(input_tokens=7, output_tokens=10)


@pytest.mark.parametrize(
    "bad",
    [
        {"usage": {"input_tokens": -1}},
        {"usage": {"input_tokens": "12"}},
        {"usage": [1]},
        {"usage": {"output_tokens": True}},
        "not an object",
    ],
)
def test_malformed_anthropic_usage_is_a_wire_error(bad: object) -> None:
    with pytest.raises(WireFormatError) as caught:
        anthropic_wire.usage_from_message(bad)
    assert caught.value.status == 502


@pytest.mark.parametrize(
    "bad",
    [
        {"usage": {"prompt_tokens": -1}},
        {"usage": {"completion_tokens": 1.5}},
        {"usage": "lots"},
        {"usage": {"prompt_tokens": 3, "prompt_tokens_details": {"cached_tokens": "2"}}},
        ["not", "an", "object"],
    ],
)
def test_malformed_openai_usage_is_a_wire_error(bad: object) -> None:
    with pytest.raises(WireFormatError):
        openai_wire.usage_from_completion(bad)


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9))
def test_openai_usage_never_negative(prompt: int, completion: int, cached: int, _: int) -> None:
    usage = openai_wire.usage_from_usage_object(
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
    )
    assert usage is not None
    assert usage.input_tokens >= 0
    assert usage.input_tokens + usage.cache_read_tokens == prompt


def test_error_bodies_have_each_formats_shape() -> None:
    assert anthropic_wire.error_body(529, "busy") == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "busy"},
    }
    assert openai_wire.error_body(429, "slow down") == {
        "error": {
            "message": "slow down",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert openai_wire.error_type_for_status(502) == "server_error"
    assert anthropic_wire.error_type_for_status(418) == "invalid_request_error"
