"""Fault injection, routing and scripting of the fake upstream, over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anthropic
import httpx
import httpx2
import pytest

from orchestra.providers import Usage
from orchestra.providers.sse import SSEParser
from orchestra.testing import (
    DropMidStream,
    FakeUpstream,
    Fault,
    InjectedEvent,
    Match,
    RecordedRequest,
    Reply,
    ScriptError,
    StreamError,
    Timeout,
    parse_script,
)

MODEL = "claude-haiku-4-5"
BODY = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def post(up: FakeUpstream, path: str = "/v1/messages", **body: object) -> httpx.Response:
    return httpx.post(up.base_url + path, json={**BODY, **body}, timeout=5)


def test_timeout_step_never_answers(upstream: FakeUpstream) -> None:
    upstream.script(Timeout())
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(upstream.base_url + "/v1/messages", json=BODY, timeout=0.3)
    assert time.monotonic() - started >= 0.3
    # The server is still healthy and the next request gets the default reply.
    assert post(upstream).status_code == 200


def test_timeout_in_sdk_raises_api_timeout(upstream: FakeUpstream) -> None:
    upstream.script(Timeout())
    with (
        anthropic.Anthropic(
            base_url=upstream.base_url, api_key="k", max_retries=0, timeout=0.3
        ) as client,
        pytest.raises(anthropic.APITimeoutError),
    ):
        client.messages.create(**BODY)  # type: ignore[arg-type]


def test_drop_mid_stream_after_n_events(upstream: FakeUpstream) -> None:
    upstream.script(DropMidStream(after_events=3, reply=Reply(text="x" * 100, chunk_chars=5)))
    parser = SSEParser()
    events = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST", upstream.base_url + "/v1/messages", json={**BODY, "stream": True}
        ) as response,
    ):
        for chunk in response.iter_raw():
            events.extend(parser.feed(chunk))
    assert [e.event for e in events] == ["message_start", "content_block_start", "ping"]


def test_drop_non_streaming_sends_half_a_body(upstream: FakeUpstream) -> None:
    upstream.script(DropMidStream())
    with pytest.raises(httpx.RemoteProtocolError):
        post(upstream)


def test_sdk_sees_a_dropped_stream_as_an_error(upstream: FakeUpstream) -> None:
    upstream.script(DropMidStream(after_events=4, reply=Reply(text="y" * 64, chunk_chars=4)))
    with (
        anthropic.Anthropic(base_url=upstream.base_url, api_key="k", max_retries=0) as client,
        # Mid-stream, the SDK lets its transport's error through unwrapped.
        pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)),
        client.messages.stream(**BODY) as stream,  # type: ignore[arg-type]
    ):
        stream.get_final_message()


def test_delays_are_applied(upstream: FakeUpstream) -> None:
    upstream.script(
        Reply(text="slow", delay_s=0.2), Reply(text="abcdef", chunk_chars=1, chunk_delay_s=0.03)
    )
    started = time.monotonic()
    assert post(upstream).json()["content"][0]["text"] == "slow"
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    response = post(upstream, stream=True)
    assert time.monotonic() - started >= 0.03 * 8
    assert response.text.count("text_delta") == 6


def test_fault_retry_after_and_custom_body(upstream: FakeUpstream) -> None:
    upstream.script(
        Fault(429, retry_after=0.5, headers={"x-should-retry": "false"}),
        Fault(503, body={"weird": True}),
        Fault(500, body="plain"),
    )
    first = post(upstream)
    assert first.status_code == 429
    assert first.headers["retry-after"] == "0.5"
    assert first.headers["x-should-retry"] == "false"
    assert first.json()["error"]["type"] == "rate_limit_error"
    second = post(upstream)
    assert (second.status_code, second.json()) == (503, {"weird": True})
    assert post(upstream).text == "plain"


def test_fifo_and_match_routing(upstream: FakeUpstream) -> None:
    upstream.script(Reply(text="for the reviewer"), match=Match(system_contains="reviewer"))
    upstream.script(Reply(text="for opus"), match=Match(model="claude-opus-4-5"))
    upstream.script(Reply(text="first"), Reply(text="second"))
    assert post(upstream).json()["content"][0]["text"] == "first"
    opus = post(upstream, model="claude-opus-4-5").json()["content"][0]["text"]
    assert opus == "for opus"
    reviewer = post(upstream, system=[{"type": "text", "text": "You are the reviewer."}])
    assert reviewer.json()["content"][0]["text"] == "for the reviewer"
    assert post(upstream).json()["content"][0]["text"] == "second"
    assert upstream.pending == 0
    assert post(upstream).json()["content"][0]["text"]  # default reply once the queue is empty


def test_count_tokens_does_not_consume_generation_steps(upstream: FakeUpstream) -> None:
    upstream.script(Fault(529))
    counted = post(upstream, "/v1/messages/count_tokens")
    assert counted.status_code == 200 and counted.json()["input_tokens"] > 0
    assert post(upstream).status_code == 529
    count_path = Match(path="/v1/messages/count_tokens")
    upstream.script(Fault(500), Timeout(), match=count_path)
    assert post(upstream, "/v1/messages/count_tokens").status_code == 500
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(upstream.base_url + "/v1/messages/count_tokens", json=BODY, timeout=0.2)
    upstream.script(Reply(usage=Usage(input_tokens=4242)), match=count_path)
    assert post(upstream, "/v1/messages/count_tokens").json() == {"input_tokens": 4242}


def test_responder_has_full_control(upstream: FakeUpstream) -> None:
    seen: list[RecordedRequest] = []

    def respond(request: RecordedRequest) -> Reply | None:
        seen.append(request)
        return Reply(text=f"echo {request.model}") if request.model == "echo" else None

    upstream.responder = respond
    assert post(upstream, model="echo").json()["content"][0]["text"] == "echo echo"
    assert post(upstream).status_code == 200
    assert [r.model for r in seen] == ["echo", MODEL]


def test_injected_unknown_events_are_sent_verbatim(upstream: FakeUpstream) -> None:
    upstream.script(
        Reply(text="hi", inject=[InjectedEvent(after=1, event="future_event", data='{"x":1}')])
    )
    response = post(upstream, stream=True)
    assert 'event: future_event\ndata: {"x":1}\n\n' in response.text


def test_bad_requests_get_format_errors(upstream: FakeUpstream) -> None:
    bad = httpx.post(upstream.base_url + "/v1/messages", content=b"{not json", timeout=5)
    assert bad.status_code == 400 and bad.json()["type"] == "error"
    missing = httpx.post(upstream.base_url + "/v1/nothing", json={}, timeout=5)
    assert missing.status_code == 404
    openai_bad = httpx.post(upstream.base_url + "/v1/chat/completions", content=b"[1]", timeout=5)
    assert openai_bad.status_code == 400 and "message" in openai_bad.json()["error"]


def test_recorded_requests_keep_query_and_headers(upstream: FakeUpstream) -> None:
    httpx.post(
        upstream.base_url + "/v1/messages?beta=true",
        json=BODY,
        headers={"anthropic-beta": "prompt-caching-2024-07-31"},
        timeout=5,
    )
    (request,) = upstream.requests
    assert request.query == "beta=true"
    assert request.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert request.json == BODY


def test_thread_safe_scripting_under_concurrency(upstream: FakeUpstream) -> None:
    upstream.script(*[Reply(text=f"r{i}") for i in range(40)])

    async def fire() -> list[str]:
        async with httpx.AsyncClient(base_url=upstream.base_url, timeout=10) as client:
            responses = await asyncio.gather(
                *[client.post("/v1/messages", json=BODY) for _ in range(40)]
            )
        return [r.json()["content"][0]["text"] for r in responses]

    texts: list[str] = []
    worker = threading.Thread(target=lambda: texts.extend(asyncio.run(fire())))
    worker.start()
    worker.join(20)
    assert sorted(texts) == sorted(f"r{i}" for i in range(40))
    assert len(upstream.requests) == 40


def test_script_parsing_rejects_bad_steps() -> None:
    pairs = parse_script(
        [{"reply": {"text": "a"}, "times": 2}, {"fault": {"status": 529}, "match": {"model": "m"}}]
    )
    assert [type(step).__name__ for step, _ in pairs] == ["Reply", "Reply", "Fault"]
    assert pairs[2][1] == Match(model="m")
    for bad in ([{"reply": {}, "fault": {"status": 500}}], [{"fault": {"status": 200}}], {"a": 1}):
        with pytest.raises(ScriptError):
            parse_script(bad)
    with pytest.raises(ScriptError):
        FakeUpstream().script("not a step")  # type: ignore[arg-type]


def test_runs_as_its_own_process(tmp_path: Path) -> None:
    script = tmp_path / "steps.json"
    script.write_text(json.dumps([{"reply": {"text": "from the file"}}]))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestra.testing.upstream",
            "--port",
            "0",
            "--script",
            str(script),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        base = line.split()[-1]
        first = httpx.post(base + "/v1/messages", json=BODY, timeout=5)
        assert first.json()["content"][0]["text"] == "from the file"
        queued = httpx.post(base + "/_fake/script", json=[{"fault": {"status": 529}}], timeout=5)
        assert queued.json() == {"queued": 1}
        assert httpx.post(base + "/v1/messages", json=BODY, timeout=5).status_code == 529
        httpx.post(base + "/v1/messages", json=BODY, headers={"x-api-key": "sk-secret"})
        recorded = httpx.get(base + "/_fake/requests", timeout=5).json()
        assert [r["path"] for r in recorded] == ["/v1/messages"] * 3
        # Credentials never leave the process; a fingerprint lets a test compare them.
        digest = hashlib.sha256(b"sk-secret").hexdigest()[:12]
        assert recorded[-1]["headers"]["x-api-key"] == f"redacted sha256:{digest}"
        assert "sk-secret" not in json.dumps(recorded)
        rejected = httpx.post(base + "/_fake/script", json=[{"nope": 1}], timeout=5)
        assert rejected.status_code == 400
    finally:
        process.terminate()
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(10) in (0, -signal.SIGTERM)
        if process.stdout is not None:
            process.stdout.close()


def test_stream_error_inside_a_200_stream(upstream: FakeUpstream) -> None:
    upstream.script(StreamError(after_events=2), StreamError(after_events=1, status=500))
    response = post(upstream, stream=True)
    assert response.status_code == 200
    events = SSEParser().feed(response.content)
    assert [e.event for e in events] == ["message_start", "content_block_start", "error"]
    assert events[-1].json()["error"]["type"] == "overloaded_error"
    openai_body = {"model": "gpt-4o-mini", "messages": [], "stream": True}
    chunks = SSEParser().feed(
        httpx.post(upstream.base_url + "/v1/chat/completions", json=openai_body).content
    )
    assert chunks[-1].json()["error"]["type"] == "server_error"
    upstream.script(StreamError())
    assert post(upstream).status_code == 529  # not streaming: a plain error response


def test_sdk_raises_on_an_in_stream_error(upstream: FakeUpstream) -> None:
    upstream.script(StreamError(after_events=3))
    with (
        anthropic.Anthropic(base_url=upstream.base_url, api_key="k", max_retries=0) as client,
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(**BODY) as stream,  # type: ignore[arg-type]
    ):
        stream.get_final_message()
    assert "Overloaded" in str(caught.value)


def test_oversized_body_gets_413_in_the_paths_format() -> None:
    with FakeUpstream.start() as up:
        big = b"x" * (32 * 1024 * 1024 + 10)
        anthropic_reply = httpx.post(up.base_url + "/v1/messages", content=big, timeout=30)
        assert anthropic_reply.status_code == 413
        assert anthropic_reply.json()["error"]["type"] == "request_too_large"
        openai_reply = httpx.post(up.base_url + "/v1/chat/completions", content=big, timeout=30)
        assert openai_reply.status_code == 413
        assert "message" in openai_reply.json()["error"]
        assert up.requests == []  # not recorded: never held in memory
