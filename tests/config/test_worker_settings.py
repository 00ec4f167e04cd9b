"""``engine.workers``: a lease must outlast several heartbeats."""

from __future__ import annotations

import pytest

from orchestra.config import parse_config
from orchestra.errors import ConfigError


def test_worker_settings_default_and_a_lease_shorter_than_three_beats_is_refused() -> None:
    workers = parse_config("", source="<t>").engine.workers
    assert (workers.executor_id, workers.heartbeat_s, workers.timeout_s) == (None, 5.0, 30.0)
    with pytest.raises(ConfigError, match=r"at least three heartbeats \(15 s\)"):
        parse_config("engine: {workers: {heartbeat_s: 5, timeout_s: 6}}", source="<t>")
