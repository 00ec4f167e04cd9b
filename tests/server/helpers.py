"""Running the fake upstream and the gateway as separate processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
ORCHESTRA = str(Path(sys.executable).parent / "orchestra")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_upstream(script: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    """``python -m orchestra.testing.upstream`` on a free port; returns (process, base URL)."""
    cmd = [sys.executable, "-m", "orchestra.testing.upstream", "--port", "0"]
    if script is not None:
        cmd += ["--script", str(script)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    return proc, line.split()[-1]


def write_config(folder: Path, upstream_url: str, **gateway: object) -> Path:
    data = {
        "providers": {"anthropic": {"kind": "anthropic", "base_url": upstream_url}},
        "models": {
            "claude-haiku-4-5": {"provider": "anthropic"},
            "claude-sonnet-4-5": {"provider": "anthropic"},
        },
        "tiers": {
            "haiku": {"model": "claude-haiku-4-5"},
            "sonnet": {"model": "claude-sonnet-4-5"},
        },
        "gateway": {"stream_journal_interval_s": 0.05, "key_cache_ttl_s": 0, **gateway},
    }
    path = folder / "orchestra.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_gateway(
    config: Path,
    database_url: str,
    home: Path,
    port: int,
    command: str = "gateway",
    extra: list[str] | None = None,
    ready_within_s: float = 30,
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ORCHESTRA_HOME": str(home)}
    log = home / f"gateway-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [
                ORCHESTRA,
                command,
                "--config",
                str(config),
                "--port",
                str(port),
                "--database-url",
                database_url,
                *(extra or []),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + ready_within_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"gateway exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError(f"gateway did not become ready: {log.read_text()}")


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM, wait, close pipes."""
    if proc.poll() is None:
        proc.terminate()
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()
