"""Shared by the wire-format tests: a fake upstream per module, and reading a stream from it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from orchestra.providers.sse import SSEEvent, SSEParser
from orchestra.testing import FakeUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream.start() as up:
        yield up


def stream_events(up: FakeUpstream, path: str, body: Mapping[str, Any]) -> list[SSEEvent]:
    """The SSE events the fake sends for ``body`` POSTed to ``path``, parsed as they arrive."""
    parser = SSEParser()
    events: list[SSEEvent] = []
    with httpx.stream("POST", up.base_url + path, json=body, timeout=5) as response:
        for chunk in response.iter_raw():
            events += parser.feed(chunk)
    return events + parser.finish()
