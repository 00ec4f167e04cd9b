"""A small HTTP/1.1 load generator for measuring the fake upstream (or anything in front of it).

``python -m orchestra.testing.load http://127.0.0.1:8089/v1/messages --concurrency 50
--seconds 5 [--stream] [--openai]``

Each of ``concurrency`` workers keeps one keep-alive connection and sends requests back to
back; it reads each response completely (``content-length`` or chunked) before the next.
Raw asyncio streams on uvloop, so the client costs far less per request than an HTTP library
and the figure is the server's, not the client's. Prints requests/s and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["LoadResult", "run_load"]


@dataclass(frozen=True)
class LoadResult:
    """Outcome of one load run."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile in milliseconds (``q`` in 0..100)."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def _request_bytes(url: str, body: bytes, headers: dict[str, str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {host}:{port}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        start = lowered.find(b"content-length:")
        if start < 0:
            raise ConnectionError("response without content-length or chunked encoding")
        end = lowered.find(b"\r\n", start)
        await reader.readexactly(int(lowered[start + 15 : end]))
    return status


async def run_load(
    url: str,
    body: bytes,
    *,
    concurrency: int = 50,
    seconds: float = 5.0,
    headers: dict[str, str] | None = None,
    warmup_s: float = 0.5,
) -> LoadResult:
    """Send ``body`` to ``url`` from ``concurrency`` connections for ``seconds``."""
    host, port, raw = _request_bytes(url, body, headers or {})
    latencies: list[float] = []
    errors = 0
    clock = time.perf_counter
    start_measure = clock() + warmup_s
    stop_at = start_measure + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                sent = clock()
                if sent >= stop_at:
                    return
                writer.write(raw)
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                done = clock()
                if sent >= start_measure:
                    if status >= 400:
                        errors += 1
                    else:
                        latencies.append((done - sent) * 1000)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(len(latencies), errors, seconds, latencies)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m orchestra.testing.load")
    parser.add_argument("url", help="e.g. http://127.0.0.1:8089/v1/messages")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--stream", action="store_true", help="ask for a streamed reply")
    parser.add_argument("--model", default="claude-haiku-4-5")
    parser.add_argument("--header", action="append", default=[], help="NAME:VALUE")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    body: dict[str, object] = {
        "model": args.model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    if args.stream:
        body["stream"] = True
    headers = dict(h.split(":", 1) for h in args.header)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - optional speed-up
        pass
    result = asyncio.run(
        run_load(
            args.url,
            json.dumps(body).encode(),
            concurrency=args.concurrency,
            seconds=args.seconds,
            headers={k.strip(): v.strip() for k, v in headers.items()},
        )
    )
    summary = {
        "requests": result.requests,
        "errors": result.errors,
        "rate_per_s": round(result.rate, 1),
        "p50_ms": round(result.percentile(50), 3),
        "p99_ms": round(result.percentile(99), 3),
        "mean_ms": round(statistics.fmean(result.latencies_ms), 3) if result.latencies_ms else None,
    }
    print(json.dumps(summary) if args.json else "  ".join(f"{k}={v}" for k, v in summary.items()))
    return 0 if result.requests else 1


if __name__ == "__main__":
    sys.exit(main())
