"""Gateway benchmark: what Orchestra's gateway costs compared with no proxy, a bare proxy
and the LiteLLM proxy, all in front of the same upstream on loopback, in one run.

(a) direct to the upstream; (b) the floor, a bare pass-through proxy on Orchestra's own
stack (``floor.py``: uvicorn + aiohttp, no auth, no accounting); (c) Orchestra (``orchestra
gateway``: auth, tier routing, rate limits, a dollar budget reservation and a durable
ledger entry per call on SQLite); (d) the LiteLLM proxy at a pinned version, installed
into ``bench/.venv-litellm`` and run offline. One worker process each.

Load comes from ``wrk`` (Debian package) with a Lua script for the POST body: 50
connections for throughput, 1 connection for latency. The upstream is the fake upstream
(``python -m orchestra.testing.upstream``) or, with ``BENCH_UPSTREAM=nginx`` or when the
fake is measured to be the bottleneck and nginx is installed, a canned reply served by
nginx. ``BENCH_SECONDS`` sets the length of each measurement (default 10).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LITELLM_VERSION = "1.77.7"
"""Pinned; the newest releases (1.10x) need a ``certifi`` newer than this machine's index has."""
LITELLM_VENV = REPO / "bench" / ".venv-litellm"
RESULTS = REPO / "bench" / "results"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
BODY = {"max_tokens": 16, "messages": [{"role": "user", "content": "Say hello."}]}
CANNED_REPLY = {
    "id": "msg_bench",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "Hello."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 3},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process under test."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def rss_mb(self) -> float:
        """Resident memory of the process and its children, in MiB."""
        total = 0
        for pid in _tree(self.proc.pid):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            pids.extend(_tree(int(child)))
    return pids


def start(
    name: str, cmd: list[str], env: dict[str, str], url: str, ready: str, work: Path
) -> Server:
    log = work / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, proc, url, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(url + ready, timeout=1)
            return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not start: {log.read_text()[-2000:]}")


@dataclass
class Measure:
    requests: int = 0
    """Answers received (probe, warm-up and measurements): each is a ledger entry for (c)."""
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_mb: float | None = None
    errors: list[str] = field(default_factory=list)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str, body: dict[str, object], headers: dict[str, str], conns: int, work: Path
) -> dict[str, float]:
    """Run wrk; returns requests/s, p50 and p99 latency (ms) and the non-2xx count."""
    script = work / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}"]
    for name, value in {"content-type": "application/json", **headers}.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    script.write_text("\n".join(lines) + "\n")
    threads = 1 if conns == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{SECONDS}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        assert match, out
        return float(match.group(1)) * _UNITS[match.group(2)]

    total = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": pct("50"),
        "p99": pct("99"),
        "non2xx": float(bad.group(1)) if bad else 0.0,
        "requests": float(total.group(1)) if total else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
    }


def measure(
    server: Server, path: str, body: dict[str, object], headers: dict[str, str], work: Path
) -> Measure:
    check = httpx.post(server.url + path, json=body, headers=headers, timeout=30)
    if check.status_code != 200:
        return Measure(errors=[f"probe answered {check.status_code}: {check.text[:300]}"])
    warm = wrk(server.url + path, body, headers, 10, work)  # warm-up
    result = Measure()
    heavy = wrk(server.url + path, body, headers, 50, work)
    result.rps = heavy["rps"]
    if heavy["non2xx"]:
        result.errors.append(f"{int(heavy['non2xx'])} non-2xx answers at 50 clients")
    light = wrk(server.url + path, body, headers, 1, work)
    result.p50_ms, result.p99_ms = light["p50"], light["p99"]
    if light["non2xx"]:
        result.errors.append(f"{int(light['non2xx'])} non-2xx answers at 1 client")
    result.rss_mb = server.rss_mb()
    # wrk counts completed answers; with keep-alive nothing else reaches the server.
    result.requests = 1 + int(warm["requests"] + heavy["requests"] + light["requests"])
    return result


def ensure_litellm() -> Path | None:
    """The LiteLLM proxy executable, installing the pinned version if needed."""
    exe = LITELLM_VENV / "bin" / "litellm"
    marker = LITELLM_VENV / f".installed-{LITELLM_VERSION}"
    if exe.exists() and marker.exists():
        return exe
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run(
            [
                str(LITELLM_VENV / "bin" / "pip"),
                "install",
                "--quiet",
                f"litellm[proxy]=={LITELLM_VERSION}",
            ],
            check=True,
            timeout=1800,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"LiteLLM could not be installed ({exc}); reporting the other ratios only")
        return None
    marker.touch()
    return exe


def start_upstream(work: Path, kind: str) -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if kind == "nginx":
        conf = work / "nginx.conf"
        reply = json.dumps(CANNED_REPLY).replace("'", "\\'")
        conf.write_text(
            f"""worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;
fastcgi_temp_path {work}/fcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000;
    location / {{ default_type application/json; return 200 '{reply}'; }} }} }}
"""
        )
        return start(
            "upstream (nginx)", ["nginx", "-c", str(conf)], dict(os.environ), url, "/", work
        )
    cmd = [
        sys.executable,
        "-m",
        "orchestra.testing.upstream",
        "--port",
        str(port),
        "--max-recorded",
        "1",
    ]
    return start("upstream (fake)", cmd, dict(os.environ), url, "/v1/models", work)


def run_all(work: Path, upstream_kind: str) -> tuple[dict[str, Measure], str]:
    env = dict(os.environ)
    upstream = start_upstream(work, upstream_kind)
    results: dict[str, Measure] = {}
    servers: list[Server] = [upstream]
    concrete = {**BODY, "model": "claude-haiku-4-5"}
    anthropic_headers = {"anthropic-version": "2023-06-01", "x-api-key": "bench"}
    try:
        print(f"(a) direct to {upstream.name}", flush=True)
        results["direct"] = measure(upstream, "/v1/messages", concrete, anthropic_headers, work)

        port = free_port()
        floor = start(
            "floor",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.gateway.floor:app",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            {**env, "BENCH_UPSTREAM": upstream.url, "PYTHONPATH": str(REPO)},
            f"http://127.0.0.1:{port}",
            "/",
            work,
        )
        servers.append(floor)
        print("(b) floor: bare pass-through proxy", flush=True)
        results["floor"] = measure(floor, "/v1/messages", concrete, anthropic_headers, work)
        floor.stop()

        print("(c) Orchestra gateway (auth, routing, limits, budget, ledger on SQLite)", flush=True)
        results["orchestra"] = run_orchestra(work, upstream.url, servers)

        port = free_port()
        memory = start(
            "orchestra-mem",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "bench.gateway.memory_gateway:create",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            {**env, "BENCH_UPSTREAM": upstream.url, "PYTHONPATH": str(REPO)},
            f"http://127.0.0.1:{port}",
            "/healthz",
            work,
        )
        servers.append(memory)
        print("(c') diagnostic: Orchestra's request path with accounting in memory", flush=True)
        from bench.gateway.memory_gateway import BENCH_KEY

        results["orch-memory"] = measure(
            memory,
            "/v1/messages",
            {**BODY, "model": "haiku"},
            {"anthropic-version": "2023-06-01", "x-api-key": BENCH_KEY},
            work,
        )
        memory.stop()

        if os.environ.get("BENCH_SKIP_LITELLM"):
            print("(d) LiteLLM skipped (BENCH_SKIP_LITELLM is set)")
        else:
            print(f"(d) LiteLLM proxy {LITELLM_VERSION}", flush=True)
            results["litellm"] = run_litellm(work, upstream.url, servers)
    finally:
        for server in servers:
            server.stop()
    return results, upstream.name


def run_orchestra(work: Path, upstream_url: str, servers: list[Server]) -> Measure:
    import yaml

    from orchestra.accounting import Accounting
    from orchestra.config import load_config
    from orchestra.store import open_database

    home = work / "orchestra-home"
    os.environ["ORCHESTRA_HOME"] = str(home)  # the key's pepper lives here
    config_path = work / "orchestra.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "providers": {"anthropic": {"kind": "anthropic", "base_url": upstream_url}},
                "models": {"claude-haiku-4-5": {"provider": "anthropic"}},
                "tiers": {"haiku": {"model": "claude-haiku-4-5"}},
                "gateway": {
                    "budgets": [
                        {
                            "name": "bench-dev",
                            "scope": "developer",
                            "subject": "bench",
                            "cap_usd": 1_000_000,
                            "period": "day",
                        }
                    ],
                    "limits": {"key": {"rpm": 100_000_000, "tpm": 1_000_000_000}},
                },
            }
        )
    )
    database_url = f"sqlite:///{work / 'orchestra.db'}"
    database = open_database(database_url)
    accounting = Accounting(database, load_config(config_path))
    key, _ = accounting.keys.create("bench", "bench-team")
    accounting.close()
    database.dispose()
    port = free_port()
    orchestra = start(
        "orchestra",
        [
            str(Path(sys.executable).parent / "orchestra"),
            "gateway",
            "--config",
            str(config_path),
            "--port",
            str(port),
            "--database-url",
            database_url,
        ],
        {**os.environ, "ORCHESTRA_HOME": str(home)},
        f"http://127.0.0.1:{port}",
        "/healthz",
        work,
    )
    servers.append(orchestra)
    body = {**BODY, "model": "haiku"}
    result = measure(
        orchestra, "/v1/messages", body, {"anthropic-version": "2023-06-01", "x-api-key": key}, work
    )
    orchestra.stop()
    # Every served call must have its ledger entry: count them.
    database = open_database(database_url)
    accounting = Accounting(database, load_config(config_path))
    entries = len(accounting.ledger.entries())
    accounting.close()
    database.dispose()
    print(f"    answers received: {result.requests}, ledger entries: {entries}", flush=True)
    if entries < result.requests:
        result.errors.append(f"{result.requests - entries} answers without a ledger entry")
    return result


def run_litellm(work: Path, upstream_url: str, servers: list[Server]) -> Measure:
    exe = ensure_litellm()
    if exe is None:
        return Measure(errors=["LiteLLM could not be installed"])
    config = work / "litellm.yaml"
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": "haiku",
                        "litellm_params": {
                            "model": "anthropic/claude-haiku-4-5",
                            "api_base": upstream_url,
                            "api_key": "bench",
                        },
                    }
                ],
                "litellm_settings": {"telemetry": False},
            }
        )
    )
    port = free_port()
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    try:
        litellm = start(
            "litellm",
            [str(exe), "--config", str(config), "--port", str(port), "--num_workers", "1"],
            env,
            f"http://127.0.0.1:{port}",
            "/health/liveliness",
            work,
        )
    except RuntimeError as exc:
        print(f"LiteLLM could not be started: {exc}")
        return Measure(errors=[f"LiteLLM could not be started: {str(exc)[:300]}"])
    servers.append(litellm)
    body = {**BODY, "model": "haiku"}
    result = measure(litellm, "/v1/messages", body, {"anthropic-version": "2023-06-01"}, work)
    litellm.stop()
    return result


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def report(results: dict[str, Measure], upstream: str) -> dict[str, object]:
    direct, floor, orch, lite = (
        results.get(k, Measure()) for k in ("direct", "floor", "orchestra", "litellm")
    )
    print()
    print(f"upstream: {upstream}; {SECONDS}s per measurement; load: wrk (50 and 1 connections)")
    print(f"{'target':<12}{'req/s @50':>12}{'p50 ms @1':>12}{'p99 ms @1':>12}{'RSS MiB':>10}")
    for name, m in results.items():

        def fmt(v: float | None, spec: str) -> str:
            return format(v, spec) if v is not None else "n/a"

        cells = fmt(m.rps, "12.0f") + fmt(m.p50_ms, "12.3f") + fmt(m.p99_ms, "12.3f")
        print(f"{name:<12}{cells}{fmt(m.rss_mb, '10.1f')}")
        for error in m.errors:
            print(f"    {name}: {error}")

    def added(m: Measure, attr: str) -> float | None:
        a, b = getattr(m, attr), getattr(direct, attr)
        return a - b if a is not None and b is not None else None

    memory = results.get("orch-memory", Measure())
    summary = {
        "orchestra_vs_floor_throughput": _ratio(orch.rps, floor.rps),
        "orchestra_memory_vs_floor_throughput": _ratio(memory.rps, floor.rps),
        "orchestra_vs_litellm_throughput": _ratio(orch.rps, lite.rps),
        "floor_vs_direct_throughput": _ratio(floor.rps, direct.rps),
        "added_p50_ms": {k: added(m, "p50_ms") for k, m in results.items() if k != "direct"},
        "added_p99_ms": {k: added(m, "p99_ms") for k, m in results.items() if k != "direct"},
    }
    print()
    vs_floor, vs_litellm = (
        summary["orchestra_vs_floor_throughput"],
        summary["orchestra_vs_litellm_throughput"],
    )
    print(f"Orchestra throughput vs floor:   {vs_floor} (target >= 0.5x)")
    print(f"Orchestra throughput vs LiteLLM: {vs_litellm} (target >= 30x)")
    print(
        "diagnostic, request path with accounting in memory vs floor: "
        f"{summary['orchestra_memory_vs_floor_throughput']}"
    )
    for name in ("floor", "orchestra", "orch-memory", "litellm"):
        p50, p99 = summary["added_p50_ms"].get(name), summary["added_p99_ms"].get(name)  # type: ignore[union-attr]
        if p50 is not None:
            print(f"added latency at 1 client, {name:<11}: p50 {p50:+.3f} ms, p99 {p99:+.3f} ms")
    return summary


def main() -> None:
    """Run the four measurements and print ratios (``make bench``)."""
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk); skipping the gateway benchmark")
        return
    kind = os.environ.get("BENCH_UPSTREAM", "fake")
    with tempfile.TemporaryDirectory(prefix="orchestra-bench-") as tmp:
        work = Path(tmp)
        results, upstream = run_all(work, kind)
        summary = report(results, upstream)
    stamp = datetime.now(UTC)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"gateway-{stamp:%Y%m%dT%H%M%SZ}.json"
    out.write_text(
        json.dumps(
            {
                "date": stamp.isoformat(),
                "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
                "upstream": upstream,
                "seconds": SECONDS,
                "litellm_version": LITELLM_VERSION,
                "results": {k: m.__dict__ for k, m in results.items()},
                "summary": summary,
            },
            indent=2,
        )
    )
    print(f"\nresults saved to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
