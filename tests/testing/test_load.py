"""The load generator, and the fake's reuse of encoded default replies under load."""

from __future__ import annotations

import asyncio
import json

import httpx

from orchestra.testing import FakeUpstream, Reply
from orchestra.testing.load import run_load

BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "x"}],
}


def test_repeated_default_replies_get_fresh_ids_and_scripts_still_win() -> None:
    with FakeUpstream.start() as up:
        first = httpx.post(up.base_url + "/v1/messages", json=BODY, timeout=5).json()
        second = httpx.post(up.base_url + "/v1/messages", json=BODY, timeout=5).json()
        assert first["id"] != second["id"]
        assert {**first, "id": ""} == {**second, "id": ""}
        streamed = [
            httpx.post(up.base_url + "/v1/messages", json={**BODY, "stream": True}).text
            for _ in range(2)
        ]
        assert streamed[0] != streamed[1]
        assert (
            streamed[0].count("event: message_stop")
            == streamed[1].count("event: message_stop")
            == 1
        )
        up.script(Reply(text="scripted"))
        third = httpx.post(up.base_url + "/v1/messages", json=BODY, timeout=5).json()
        assert third["content"][0]["text"] == "scripted"
        assert len(up.requests) == 5


def test_run_load_measures_a_live_fake() -> None:
    with FakeUpstream.start(max_recorded=10) as up:
        result = asyncio.run(
            run_load(
                up.base_url + "/v1/messages",
                json.dumps({**BODY, "stream": True}).encode(),
                concurrency=4,
                seconds=0.5,
                warmup_s=0.1,
            )
        )
        assert result.errors == 0
        assert result.requests > 20
        assert 0 < result.percentile(50) <= result.percentile(99)
        assert len(up.requests) == 10  # bounded recording
