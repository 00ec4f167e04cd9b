"""A real Redis for the shared-state tests: a random key prefix per test, deleted after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

REDIS_ENV = "ORCHESTRA_TEST_REDIS_URL"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
"""Nothing listens on port 1: every connection is refused at once."""


def redis_url() -> str:
    """The test Redis (``$ORCHESTRA_TEST_REDIS_URL``, else 127.0.0.1:6379); the test is
    skipped, with the reason shown, when it does not answer."""
    import redis

    url = os.environ.get(REDIS_ENV, DEFAULT_REDIS)
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {url} ({exc}); set {REDIS_ENV}")
    finally:
        client.close()
    return url


@contextmanager
def redis_prefix(url: str) -> Iterator[str]:
    """A fresh key prefix; every key under it is deleted at the end."""
    import redis

    prefix = f"orchestra-test-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
