"""The long fuzz run: Hypothesis-generated requests against a real gateway on loopback.

    python -m bench.fuzz [--examples 5000] [--seed N]      (or: make fuzz)

The gateway runs as ``orchestra gateway`` does (uvicorn with Orchestra's protocol and its
limits, the SQLite ledger) in front of the fake upstream. Every generated request (see
``tests/gateway/fuzz_strategies.py``: every endpoint, bodies, headers, encodings, sizes) is
sent over a real socket and its answer checked: no 5xx for the client's input, a
well-formed error in the client's format. Then the run checks that the gateway still
serves, that ``/metrics`` is whole and bounded, that every call that reached the upstream
has its ledger entry, that memory did not run away, and that a restart on the same
database succeeds. It prints the figures (docs/gateway.md keeps the last ones).
"""

from __future__ import annotations

import argparse
import collections
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from tests.gateway.fuzz_strategies import FuzzRequest, check_answer, fuzz_requests
from tests.gateway.helpers import gateway_config, gateway_config_yaml

from orchestra.accounting import Accounting
from orchestra.store import open_database
from orchestra.testing import FakeUpstream
from orchestra.testing.steps import RecordedRequest

MODEL_PATHS = ("/v1/messages", "/chat/completions")


class Connection:
    """One keep-alive connection to the gateway, reopened when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(self, request: FuzzRequest) -> tuple[int, str, bytes, bool]:
        for attempt in (1, 2):
            try:
                self.conn.putrequest(
                    request.method, request.path + request.query, skip_accept_encoding=True
                )
                for name, value in request.headers.items():
                    self.conn.putheader(name, value.encode("latin-1"))
                self.conn.putheader("content-length", str(len(request.body)))
                self.conn.endheaders(request.body)
                response = self.conn.getresponse()
                body = response.read()
                closed = response.getheader("connection", "") == "close"
                if closed:
                    self.reopen()
                return response.status, response.getheader("content-type", ""), body, closed
            except (ConnectionError, http.client.HTTPException):
                self.reopen()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def reopen(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)


_SERVE = """
import sys, uvicorn
from pathlib import Path
from orchestra.config import load_config
from orchestra.server import build_app
from orchestra.server.protocol import uvicorn_options
path = Path(sys.argv[3])  # reloads (POST /v1/orchestra/admin/reload) read it again
app = build_app(load_config(path), database_url=sys.argv[2], include_api=False, config_path=path)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", **uvicorn_options())
"""


class GatewayProcess:
    """``orchestra gateway`` as its own process (so its memory is measured alone)."""

    def __init__(self, database_url: str, config_path: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
        argv = [sys.executable, "-c", _SERVE, str(self.port), database_url, str(config_path)]
        self.proc = subprocess.Popen(argv, cwd=root, env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                if Connection(self.port).send(FuzzRequest("GET", "/healthz", ""))[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.1)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("-v", "--verbose", action="store_true", help="answers per endpoint")
    args = parser.parse_args(argv)
    statuses: collections.Counter[str] = collections.Counter()
    closes = [0]
    upstream_calls = [0]

    def count(request: RecordedRequest) -> None:
        if request.path.endswith(MODEL_PATHS):
            upstream_calls[0] += 1

    with tempfile.TemporaryDirectory() as tmp, FakeUpstream.start(max_recorded=100) as upstream:
        upstream.responder = lambda request: count(request)  # counts, then the default reply
        database_url = f"sqlite:///{tmp}/fuzz.db"
        config_path = Path(tmp) / "orchestra.yaml"
        config_path.write_text(gateway_config_yaml(upstream.base_url, key_cache_ttl_s=5))
        database = open_database(database_url)
        accounting = Accounting(database, gateway_config(upstream.base_url))
        key, _ = accounting.keys.create("alice", "payments")
        admin, _ = accounting.keys.create("root", None, admin=True)
        server = GatewayProcess(database_url, config_path)
        connection = Connection(server.port)
        rss_before = server.rss_mib()

        @settings(
            max_examples=args.examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(data=st.data())
        def one(data: st.DataObject) -> None:
            request = data.draw(fuzz_requests(key, admin))
            status, ctype, body, closed = connection.send(request)
            statuses[f"{request.method} {request.path} {status}"] += 1
            closes[0] += closed
            check_answer(request, status, ctype, body)

        if args.seed is not None:
            one = seed(args.seed)(one)
        started = time.monotonic()
        failure: BaseException | None = None
        try:
            one()
        except BaseException as exc:  # report what was found, then fail
            failure = exc
        elapsed = time.monotonic() - started
        health = Connection(server.port)
        ok = health.send(FuzzRequest("GET", "/healthz", ""))[0] == 200
        metrics = health.send(
            FuzzRequest("GET", "/metrics", "", {"authorization": f"Bearer {admin}"})
        )
        rss_after = server.rss_mib()
        time.sleep(0.5)  # queued ledger rows commit within 50 ms
        server.stop()
        ledger = len(accounting.ledger.entries())
        restarted = GatewayProcess(database_url, config_path)
        ready = Connection(restarted.port).send(FuzzRequest("GET", "/readyz", ""))[0] == 200
        restarted.stop()
        accounting.close()
        database.dispose()
    served_upstream = upstream_calls[0]
    requests = sum(statuses.values())
    by_status: collections.Counter[str] = collections.Counter()
    for name, n in statuses.items():
        by_status[name.rsplit(" ", 1)[1]] += n
    print(f"requests sent      {requests} in {elapsed:.1f} s ({requests / elapsed:.0f}/s)")
    print("answers by status  " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
    fives = sum(n for s, n in by_status.items() if s.startswith("5"))
    print(f"5xx answers        {fives}")
    print(f"connection: close  {closes[0]} (refused before their body was read)")
    print(f"still serving      {ok}; /metrics {metrics[0]}, {len(metrics[2]):,} bytes")
    print(f"upstream calls     {served_upstream}; ledger entries {ledger} (refusals included)")
    if args.verbose:
        for name, n in sorted(statuses.items()):
            print(f"  {name}: {n}")
    print(f"gateway RSS        {rss_before:.1f} -> {rss_after:.1f} MiB")
    print(f"restart            {'ready' if ready else 'FAILED'}")
    if failure is not None:
        print(f"FAILED: {failure!r}")
        raise failure
    healthy = ok and metrics[0] == 200 and ready and ledger >= served_upstream and fives == 0
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
