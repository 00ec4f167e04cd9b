"""The real Claude Code CLI, running a tool loop on an OpenAI-format upstream through the
translators (a minimal translating proxy written for this test, in front of the fake)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestra.providers.sse import SSEParser, encode_event
from orchestra.providers.translate import (
    OpenAIToAnthropicStream,
    anthropic_to_openai_request,
    openai_error_to_anthropic,
    openai_to_anthropic_response,
)
from orchestra.testing import FakeUpstream, Reply, ToolCall
from orchestra.testing.asgi import BackgroundServer
from orchestra.testing.claude_code import find_claude_code, offline_env

CLAUDE = find_claude_code()


class TranslatingProxy:
    """Anthropic Messages in, OpenAI Chat Completions out: just the translators, no gateway."""

    def __init__(self, openai_base: str) -> None:
        self.openai_base = openai_base

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] != "POST" or scope["path"] != "/v1/messages":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        request = json.loads(body)
        upstream_body = anthropic_to_openai_request(request)
        async with (
            httpx.AsyncClient(timeout=30) as client,
            client.stream(
                "POST", self.openai_base + "/v1/chat/completions", json=upstream_body
            ) as response,
        ):
            if response.status_code != 200:
                status, error = openai_error_to_anthropic(
                    response.status_code, json.loads(await response.aread())
                )
                await _send_json(send, status, error)
                return
            if not request.get("stream"):
                payload = openai_to_anthropic_response(
                    json.loads(await response.aread()), model=request["model"]
                )
                await _send_json(send, 200, payload)
                return
            headers = [(b"content-type", b"text/event-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            translator = OpenAIToAnthropicStream(model=request["model"], input_tokens=10)
            parser = SSEParser()
            async for chunk in response.aiter_raw():
                out = b"".join(
                    encode_event(e.event, e.data)
                    for event in parser.feed(chunk)
                    for e in translator.feed(event)
                )
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            tail = b"".join(encode_event(e.event, e.data) for e in translator.finish())
            await send({"type": "http.response.body", "body": tail})


async def _send_json(send: Any, status: int, payload: Any) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


@pytest.fixture
def proxy_url(upstream: FakeUpstream) -> Iterator[str]:
    server = BackgroundServer(TranslatingProxy(upstream.base_url))
    server.start_thread("translating-proxy")
    try:
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream.start() as up:
        yield up


@pytest.mark.slow
@pytest.mark.claude_code
@pytest.mark.skipif(
    CLAUDE is None, reason="Claude Code CLI not installed (make test installs it with npm)"
)
def test_claude_code_tool_loop_on_an_openai_upstream(
    upstream: FakeUpstream, proxy_url: str, tmp_path: Path
) -> None:
    assert CLAUDE is not None
    home = tmp_path / "home"
    project = tmp_path / "project"
    home.mkdir()
    project.mkdir()
    (project / "notes.txt").write_text("the answer is 42\n")
    upstream.script(
        Reply(tool_calls=[ToolCall("Read", {"file_path": str(project / "notes.txt")})]),
        Reply(text="The notes say 42.", chunk_chars=4),
    )
    env = offline_env(proxy_url, home)
    completed = subprocess.run(
        [
            CLAUDE,
            "-p",
            "What do my notes say?",
            "--output-format",
            "json",
            "--allowedTools",
            "Read",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout)
    assert result["result"] == "The notes say 42."
    assert result["num_turns"] == 2
    calls = [r for r in upstream.requests if r.path == "/v1/chat/completions"]
    assert len(calls) >= 2
    # Claude Code's tool_result came back to the OpenAI upstream as a tool message.
    tool_messages = [m for m in calls[-1].json["messages"] if m["role"] == "tool"]
    assert tool_messages and "the answer is 42" in tool_messages[-1]["content"]
    assert calls[-1].json["stream_options"] == {"include_usage": True}
