"""A model host's own load, from its Prometheus ``/metrics`` text: the requests it is running
and the requests waiting for a slot (llama.cpp's server with ``--metrics``, vLLM)."""

from __future__ import annotations

QUEUE_GAUGES = ("llamacpp:requests_deferred", "vllm:num_requests_waiting")
"""Requests waiting for a slot, by server."""
RUNNING_GAUGES = ("llamacpp:requests_processing", "vllm:num_requests_running")
"""Requests being decoded, by server."""


def read_gauges(text: str) -> tuple[float | None, float | None]:
    """Queue depth and running requests from Prometheus text (summed over label sets);
    ``None`` for a gauge the text does not have."""
    queue: float | None = None
    running: float | None = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        name = name.split("{", 1)[0]
        try:
            value = float(rest.split()[0]) if rest.split() else None
        except ValueError:
            continue
        if value is None:
            continue
        if name in QUEUE_GAUGES:
            queue = (queue or 0.0) + value
        elif name in RUNNING_GAUGES:
            running = (running or 0.0) + value
    return queue, running
