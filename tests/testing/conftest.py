"""Shared by the fake upstream's tests: one server per module, cleared before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestra.testing import FakeUpstream


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[FakeUpstream]:
    with FakeUpstream.start() as up:
        yield up


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> FakeUpstream:
    """The module's fake with no queued steps, recorded requests or responder left over."""
    upstream_server.clear()
    return upstream_server
