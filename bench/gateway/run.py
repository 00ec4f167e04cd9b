"""Gateway benchmark: what Orchestra's gateway costs compared with no proxy, a bare proxy
and the LiteLLM proxy, all in front of the same upstream on loopback, in one run.

(a) direct to the upstream; (b) the floor, a bare pass-through proxy as one would write it
(``floor.py``: uvicorn + aiohttp, no auth, no accounting); (b') a diagnostic, the same
pass-through on Orchestra's own transport (``lean_floor.py``); (c) Orchestra (``orchestra
gateway``: auth, tier routing, rate limits, a dollar budget reservation and a durable
ledger entry per call on SQLite); (d) the LiteLLM proxy at a pinned version, installed
into ``bench/.venv-litellm`` and run offline with a master key (auth on; its database
features cannot be set up offline). One worker process each.

Load comes from ``wrk`` (Debian package) with a Lua script for the POST body: 50
connections for throughput, 1 connection for latency. All targets run at once (idle when
not loaded); throughput is measured in ``BENCH_ROUNDS`` rounds (default 3) in which every
target is loaded in turn, so the floor and Orchestra are compared round by round under the
machine's load of the moment, and the median of the per-round ratios is reported. The CPU
time each server's processes used per answer is reported too: on a shared machine it moves
far less than requests/s. The upstream is the fake upstream
(``python -m orchestra.testing.upstream``) or, with ``BENCH_UPSTREAM=nginx``, a canned reply
served by nginx. ``BENCH_SECONDS`` sets the length of each measurement (default 10).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
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
LITELLM_MASTER_KEY = "sk-bench-master"
RESULTS = REPO / "bench" / "results"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
"""Throughput rounds: in each, every target is loaded in turn, so neighbouring
measurements of the floor and Orchestra share the machine's load of the moment."""
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

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its children (threads included)."""
        ticks = 0
        for pid in _tree(self.proc.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

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
    rounds: list[float] = field(default_factory=list)
    """Requests/s at 50 clients, one per round (targets take turns within a round)."""
    cpu_rounds: list[float] = field(default_factory=list)
    """CPU time of the server's processes per answer at 50 clients (us), one per round."""
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_mb: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float | None:
        return statistics.median(self.rounds) if self.rounds else None

    @property
    def cpu_us(self) -> float | None:
        return statistics.median(self.cpu_rounds) if self.cpu_rounds else None


@dataclass
class Target:
    """A server under test and the request it is loaded with."""

    name: str
    server: Server
    path: str
    body: dict[str, object]
    headers: dict[str, str]
    result: Measure = field(default_factory=Measure)

    @property
    def url(self) -> str:
        return self.server.url + self.path


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


def prepare(target: Target, work: Path) -> bool:
    """Probe with one request, then warm up; False (and the error recorded) if it failed."""
    m = target.result
    check = httpx.post(target.url, json=target.body, headers=target.headers, timeout=30)
    if check.status_code != 200:
        m.errors.append(f"probe answered {check.status_code}: {check.text[:300]}")
        return False
    warm = wrk(target.url, target.body, target.headers, 10, work)
    m.requests += 1 + int(warm["requests"])
    return True


def throughput(target: Target, work: Path) -> None:
    """One round at 50 clients: requests/s and the server's CPU time per answer."""
    m = target.result
    cpu_before = target.server.cpu_seconds()
    heavy = wrk(target.url, target.body, target.headers, 50, work)
    cpu = target.server.cpu_seconds() - cpu_before
    m.rounds.append(heavy["rps"])
    if heavy["requests"]:
        m.cpu_rounds.append(cpu / heavy["requests"] * 1e6)
    m.requests += int(heavy["requests"])
    if heavy["non2xx"]:
        m.errors.append(f"{int(heavy['non2xx'])} non-2xx answers at 50 clients")


def latency(target: Target, work: Path) -> None:
    """Latency at 1 client (p50, p99), then the resident memory after all the load."""
    m = target.result
    light = wrk(target.url, target.body, target.headers, 1, work)
    m.p50_ms, m.p99_ms = light["p50"], light["p99"]
    m.requests += int(light["requests"])
    if light["non2xx"]:
        m.errors.append(f"{int(light['non2xx'])} non-2xx answers at 1 client")
    m.rss_mb = target.server.rss_mb()


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


def start_uvicorn(name: str, app: list[str], env: dict[str, str], ready: str, work: Path) -> Server:
    """A bench ASGI app under stock uvicorn (one worker, uvloop and httptools, no access
    log, no proxy-header rewriting)."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", *app, "--port", str(port), "--no-access-log"]
    cmd += ["--no-proxy-headers", "--log-level", "warning"]
    env = {**env, "PYTHONPATH": str(REPO)}
    return start(name, cmd, env, f"http://127.0.0.1:{port}", ready, work)


def start_module(
    name: str,
    module: str,
    env: dict[str, str],
    ready: str,
    work: Path,
    args: tuple[str, ...] = (),
) -> Server:
    """A bench module that serves itself on the port given as its first argument."""
    port = free_port()
    cmd = [sys.executable, "-m", module, str(port), *args]
    # This checkout's code (src/), whatever the virtualenv's editable install points at.
    env = {**env, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    return start(name, cmd, env, f"http://127.0.0.1:{port}", ready, work)


def run_all(work: Path, upstream_kind: str) -> tuple[dict[str, Measure], str]:
    """Start every target, warm each up, then load them in turn for ``ROUNDS`` rounds."""
    upstream = start_upstream(work, upstream_kind)
    servers: list[Server] = [upstream]
    targets: list[Target] = []
    concrete = {**BODY, "model": "claude-haiku-4-5"}
    anthropic_headers = {"anthropic-version": "2023-06-01", "x-api-key": "bench"}
    env = {**os.environ, "BENCH_UPSTREAM": upstream.url}
    ledger: tuple[str, Path] | None = None
    try:
        targets.append(Target("direct", upstream, "/v1/messages", concrete, anthropic_headers))
        print("(b) floor: bare pass-through proxy (uvicorn + aiohttp)", flush=True)
        floor = start_uvicorn("floor", ["bench.gateway.floor:app"], env, "/", work)
        servers.append(floor)
        targets.append(Target("floor", floor, "/v1/messages", concrete, anthropic_headers))

        print("(b') diagnostic: bare pass-through on Orchestra's own transport", flush=True)
        lean = start_module("lean-floor", "bench.gateway.lean_floor", env, "/", work)
        servers.append(lean)
        targets.append(Target("lean-floor", lean, "/v1/messages", concrete, anthropic_headers))

        print("(c) Orchestra gateway (auth, routing, limits, budget, ledger on SQLite)", flush=True)
        orchestra, key, ledger = start_orchestra(work, upstream.url)
        servers.append(orchestra)
        headers = {"anthropic-version": "2023-06-01", "x-api-key": key}
        body = {**BODY, "model": "haiku"}
        targets.append(Target("orchestra", orchestra, "/v1/messages", body, headers))

        print("(c') diagnostic: Orchestra's request path with accounting in memory", flush=True)
        memory = start_module(
            "orchestra-mem", "bench.gateway.memory_gateway", env, "/healthz", work
        )
        servers.append(memory)
        from bench.gateway.memory_gateway import BENCH_KEY

        headers = {"anthropic-version": "2023-06-01", "x-api-key": BENCH_KEY}
        targets.append(Target("orch-memory", memory, "/v1/messages", body, headers))

        print("(c'') baseline of the policy check: (c') without the Cedar policies", flush=True)
        no_policies = start_module(
            "orch-mem-nopol",
            "bench.gateway.memory_gateway",
            env,
            "/healthz",
            work,
            ("no-policies",),
        )
        servers.append(no_policies)
        targets.append(Target("orch-mem-nopol", no_policies, "/v1/messages", body, headers))

        if os.environ.get("BENCH_SKIP_LITELLM"):
            print("(d) LiteLLM skipped (BENCH_SKIP_LITELLM is set)")
        else:
            print(f"(d) LiteLLM proxy {LITELLM_VERSION}", flush=True)
            litellm = start_litellm(work, upstream.url)
            if isinstance(litellm, Server):
                servers.append(litellm)
                headers = {"anthropic-version": "2023-06-01", "x-api-key": LITELLM_MASTER_KEY}
                targets.append(Target("litellm", litellm, "/v1/messages", body, headers))
            else:
                failed = Target("litellm", upstream, "/v1/messages", body, {})
                failed.result.errors.append(litellm)
                targets.append(failed)

        ready = [t for t in targets if not t.result.errors and prepare(t, work)]
        for n in range(ROUNDS):
            print(f"round {n + 1}/{ROUNDS} at 50 clients: {', '.join(t.name for t in ready)}")
            for target in ready:
                throughput(target, work)
        print("latency at 1 client", flush=True)
        for target in ready:
            latency(target, work)
    finally:
        for server in servers:
            server.stop()
    results = {t.name: t.result for t in targets}
    if ledger is not None and "orchestra" in results:
        check_ledger(results["orchestra"], *ledger)
    return results, upstream.name


def start_orchestra(work: Path, upstream_url: str) -> tuple[Server, str, tuple[str, Path]]:
    """``orchestra gateway`` on SQLite with a key, a budget and rate limits on the call path;
    returns the server, its key and (database URL, config path) for the ledger check."""
    gateway = {
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
    }
    orchestra, keys, database_url, config_path = start_gateway_process(
        work, upstream_url, gateway, ["bench"]
    )
    return orchestra, keys["bench"], (database_url, config_path)


def start_gateway_process(
    work: Path, upstream_url: str, gateway: dict[str, object], developers: list[str]
) -> tuple[Server, dict[str, str], str, Path]:
    """``orchestra gateway`` as its own process on SQLite, with the ``gateway`` section given
    and one key per developer (team ``bench-team``); returns the server, the keys by
    developer, the database URL and the configuration file."""
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
                "gateway": gateway,
            }
        )
    )
    database_url = f"sqlite:///{work / 'orchestra.db'}"
    database = open_database(database_url)
    accounting = Accounting(database, load_config(config_path))
    keys = {who: accounting.keys.create(who, "bench-team")[0] for who in developers}
    accounting.close()
    database.dispose()
    port = free_port()
    server = start(
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
    return server, keys, database_url, config_path


def check_ledger(result: Measure, database_url: str, config_path: Path) -> None:
    """Every answer Orchestra gave must have its ledger entry (the server has stopped)."""
    from orchestra.accounting import Accounting
    from orchestra.config import load_config
    from orchestra.store import open_database

    database = open_database(database_url)
    accounting = Accounting(database, load_config(config_path))
    entries = len(accounting.ledger.entries())
    accounting.close()
    database.dispose()
    print(f"    answers received: {result.requests}, ledger entries: {entries}", flush=True)
    if entries < result.requests:
        result.errors.append(f"{result.requests - entries} answers without a ledger entry")


def start_litellm(work: Path, upstream_url: str) -> Server | str:
    """The LiteLLM proxy (installed on first use), or why it could not be started."""
    exe = ensure_litellm()
    if exe is None:
        return "LiteLLM could not be installed"
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
                # Auth on, like Orchestra's. Its virtual keys, budgets and spend log need
                # LiteLLM's database, reached through prisma-client-py 0.11.0 and the Prisma
                # 5.4.2 query engine (and schema engine for its migrations), native binaries
                # that only binaries.prisma.sh serves: no PyPI, npm or Debian package carries
                # them (`prisma generate` can be made to run offline; the engines cannot),
                # so those stay off.
                "general_settings": {"master_key": LITELLM_MASTER_KEY},
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
        return start(
            "litellm",
            [str(exe), "--config", str(config), "--port", str(port), "--num_workers", "1"],
            env,
            f"http://127.0.0.1:{port}",
            "/health/liveliness",
            work,
        )
    except RuntimeError as exc:
        print(f"LiteLLM could not be started: {exc}")
        return f"LiteLLM could not be started: {str(exc)[:300]}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def _paired(a: Measure, b: Measure) -> list[float]:
    """Per-round ratios a/b of requests/s (the two were measured one after the other)."""
    return [x / y for x, y in zip(a.rounds, b.rounds, strict=False) if y]


def report(results: dict[str, Measure], upstream: str) -> dict[str, object]:
    direct, floor, orch, lite = (
        results.get(k, Measure()) for k in ("direct", "floor", "orchestra", "litellm")
    )
    memory = results.get("orch-memory", Measure())
    lean = results.get("lean-floor", Measure())
    print()
    print(
        f"upstream: {upstream}; {ROUNDS} rounds of {SECONDS}s at 50 clients, then {SECONDS}s "
        "at 1 client; load: wrk"
    )
    print(
        f"{'target':<12}{'req/s @50':>11}{'(min-max)':>15}{'CPU us/ans':>12}"
        f"{'p50 ms @1':>11}{'p99 ms @1':>11}{'RSS MiB':>9}"
    )

    def fmt(v: float | None, spec: str) -> str:
        return format(v, spec) if v is not None else "n/a"

    for name, m in results.items():
        spread = f"{min(m.rounds):.0f}-{max(m.rounds):.0f}" if m.rounds else "n/a"
        cells = fmt(m.rps, "11.0f") + f"{spread:>15}" + fmt(m.cpu_us, "12.1f")
        cells += fmt(m.p50_ms, "11.3f") + fmt(m.p99_ms, "11.3f") + fmt(m.rss_mb, "9.1f")
        print(f"{name:<12}{cells}")
        for error in m.errors:
            print(f"    {name}: {error}")

    def added(m: Measure, attr: str) -> float | None:
        a, b = getattr(m, attr), getattr(direct, attr)
        return a - b if a is not None and b is not None else None

    def paired(a: Measure, b: Measure) -> dict[str, object]:
        rounds = _paired(a, b)
        return {
            "median": round(statistics.median(rounds), 3) if rounds else None,
            "rounds": [round(r, 3) for r in rounds],
        }

    cpu_ratio = floor.cpu_us / orch.cpu_us if floor.cpu_us and orch.cpu_us else None
    summary = {
        "orchestra_vs_floor_throughput": paired(orch, floor),
        "orchestra_memory_vs_floor_throughput": paired(memory, floor),
        "policies_vs_no_policies_throughput": paired(
            memory, results.get("orch-mem-nopol", Measure())
        ),
        "orchestra_vs_lean_floor_throughput": paired(orch, lean),
        "orchestra_vs_litellm_throughput": paired(orch, lite),
        "floor_vs_direct_throughput": paired(floor, direct),
        "floor_vs_orchestra_cpu_per_answer": round(cpu_ratio, 3) if cpu_ratio else None,
        "added_p50_ms": {k: added(m, "p50_ms") for k, m in results.items() if k != "direct"},
        "added_p99_ms": {k: added(m, "p99_ms") for k, m in results.items() if k != "direct"},
    }
    print()

    def line(label: str, key: str, target: str) -> None:
        value = summary[key]
        assert isinstance(value, dict)
        rounds = ", ".join(f"{r:.2f}x" for r in value["rounds"])
        median = f"{value['median']:.2f}x" if value["median"] is not None else "n/a"
        print(f"{label}: {median} median of rounds ({rounds or 'n/a'}){target}")

    line("Orchestra throughput vs floor  ", "orchestra_vs_floor_throughput", " (target >= 0.5x)")
    line("Orchestra throughput vs LiteLLM", "orchestra_vs_litellm_throughput", " (target >= 30x)")
    line("diagnostic, accounting in memory vs floor", "orchestra_memory_vs_floor_throughput", "")
    line("diagnostic, Orchestra vs lean floor", "orchestra_vs_lean_floor_throughput", "")
    line(
        "policy check: with / without policies (c' / c'')",
        "policies_vs_no_policies_throughput",
        " (target >= 0.95x)",
    )
    if cpu_ratio:
        print(
            f"CPU per answer, floor / Orchestra: {cpu_ratio:.2f}x "
            f"({floor.cpu_us:.0f} us / {orch.cpu_us:.0f} us; all of each server's threads)"
        )
    for name in ("floor", "lean-floor", "orchestra", "orch-memory", "litellm"):
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
                "rounds": ROUNDS,
                "litellm_version": LITELLM_VERSION,
                "results": {
                    k: {**m.__dict__, "rps": m.rps, "cpu_us": m.cpu_us} for k, m in results.items()
                },
                "summary": summary,
            },
            indent=2,
        )
    )
    print(f"\nresults saved to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
