"""The policy check on the gateway's hot path, measured alone: Orchestra's request path
(accounting in memory, ``memory_gateway``) with the Cedar policies and without them, loaded
in turn (the order alternating each round) at 50 clients with ``wrk``; prints the requests/s
of each round, their ratios and the median ratio (target: at least 0.95x).

Also prints the in-process cost of the check per request (``Gateway.govern`` with its
decision cached, as every request after a key's first one per model and policy version
meets it), which a loaded machine cannot hide the way it hides a few percent of req/s.

``python -m bench.gateway.policies`` (``BENCH_ROUNDS``, ``BENCH_SECONDS`` as in ``run.py``).
The full benchmark (``run.py``) measures the same pair among its other targets.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.gateway import run as bench
from bench.gateway.memory_gateway import BENCH_KEY


def in_process_us(calls: int = 200_000) -> tuple[float, float]:
    """Microseconds per ``Gateway.govern`` call: (cached, first call of a key and model)."""
    import asyncio
    import time

    from bench.gateway.memory_gateway import create
    from orchestra.gateway import Caller

    os.environ.setdefault("BENCH_UPSTREAM", "http://127.0.0.1:9")
    gateway = create(policies=True).gateway
    caller = Caller("bench", "bench", "bench-team")
    route = gateway.snapshot.routing.resolve("haiku", "bench-team")
    policy = gateway.snapshot.policy
    assert policy is not None

    async def loop() -> None:
        for _ in range(calls):
            await gateway.govern(caller, route)

    t0 = time.perf_counter()
    asyncio.run(loop())
    cached = (time.perf_counter() - t0) / calls * 1e6
    t0 = time.perf_counter()
    for n in range(200):  # a new key of a new developer each time: nothing cached
        policy.check(Caller(f"key{n}", f"dev{n}", "bench-team"), route)
    first = (time.perf_counter() - t0) / 200 * 1e6
    return cached, first


def main() -> None:
    """Run the pair and print the ratios."""
    cached, first = in_process_us()
    print(
        f"in-process: {cached:.2f} us per request (cached decision); a key's first call "
        f"per model and policy version, reload included: {first:.0f} us"
    )
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk); skipping")
        return
    with tempfile.TemporaryDirectory(prefix="orchestra-bench-") as tmp:
        work = Path(tmp)
        upstream = bench.start_upstream(work, "fake")
        env = {**os.environ, "BENCH_UPSTREAM": upstream.url}
        module = "bench.gateway.memory_gateway"
        with_p = bench.start_module("with-policies", module, env, "/healthz", work)
        without = bench.start_module("no-policies", module, env, "/healthz", work, ("no-policies",))
        headers = {"anthropic-version": "2023-06-01", "x-api-key": BENCH_KEY}
        body = {**bench.BODY, "model": "haiku"}
        a = bench.Target("with-policies", with_p, "/v1/messages", body, headers)
        b = bench.Target("no-policies", without, "/v1/messages", body, headers)
        try:
            if not (bench.prepare(a, work) and bench.prepare(b, work)):
                print("a target did not answer:", a.result.errors + b.result.errors)
                return
            for n in range(bench.ROUNDS):
                for target in (a, b) if n % 2 == 0 else (b, a):
                    bench.throughput(target, work)
        finally:
            for server in (with_p, without, upstream):
                server.stop()
    ratios = [x / y for x, y in zip(a.result.rounds, b.result.rounds, strict=False) if y]
    for target in (a, b):
        rounds = ", ".join(f"{x:.0f}" for x in target.result.rounds)
        cpu = target.result.cpu_us
        print(f"{target.name:<14} req/s per round: {rounds}; CPU us/answer: {cpu or 0:.1f}")
    listed = ", ".join(f"{r:.2f}x" for r in ratios)
    median = statistics.median(ratios) if ratios else float("nan")
    print(
        f"policy check, with / without: {median:.2f}x median of rounds ({listed}) (target >= 0.95x)"
    )


if __name__ == "__main__":
    main()
