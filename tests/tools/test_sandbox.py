"""What the sandbox enforces on this machine: timeout, memory, environment, network."""

from __future__ import annotations

import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

from orchestra.tools import CommandLimits, network_isolation_available, run_command


def _run(tmp_path: Path, code: str, **limits: object) -> object:
    return run_command(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        home=tmp_path / "home",
        limits=CommandLimits(**limits),  # type: ignore[arg-type]
    )


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild-alive"
    child = tmp_path / "child.py"
    child.write_text(f"import time\ntime.sleep(3)\nopen({str(marker)!r}, 'w').close()\n")
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, {str(child)!r}])\n"
        "time.sleep(30)\n"
    )
    started = time.monotonic()
    result = _run(tmp_path, code, timeout_s=1.0)
    assert result.timed_out and not result.ok  # type: ignore[attr-defined]
    assert time.monotonic() - started < 10
    time.sleep(3.5)
    assert not marker.exists(), "a grandchild survived the timeout"


def test_memory_limit_stops_a_runaway_allocation(tmp_path: Path) -> None:
    result = _run(tmp_path, "x = bytearray(900 * 1024 * 1024)", memory_mb=256)
    assert result.exit_code != 0  # type: ignore[attr-defined]
    assert "MemoryError" in result.stderr  # type: ignore[attr-defined]


WASM_MEMORY = "const m = new WebAssembly.Memory({initial: 1}); console.log(m.buffer.byteLength)"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_data_limit_lets_node_reserve_webassembly_memory(tmp_path: Path) -> None:
    """V8 reserves ~10 GiB of address space per WebAssembly memory: an address-space limit
    stops it, a data limit of the same size does not (vitest's and linters' tools load
    WebAssembly)."""

    def node(kind: str) -> object:
        return run_command(
            ["node", "-e", WASM_MEMORY],
            cwd=tmp_path,
            home=tmp_path / "home",
            limits=CommandLimits(memory_mb=2048, memory_kind=kind),  # type: ignore[arg-type]
        )

    stopped = node("address_space")
    assert stopped.exit_code != 0  # type: ignore[attr-defined]
    assert "WebAssembly.Memory(): could not allocate" in stopped.stderr  # type: ignore[attr-defined]
    ran = node("data")
    assert ran.exit_code == 0, ran.stderr  # type: ignore[attr-defined]
    assert ran.stdout.strip() == "65536"  # type: ignore[attr-defined]


def test_data_limit_still_stops_a_runaway_allocation(tmp_path: Path) -> None:
    result = _run(tmp_path, "x = bytearray(900 * 1024 * 1024)", memory_mb=256, memory_kind="data")
    assert result.exit_code != 0  # type: ignore[attr-defined]
    assert "MemoryError" in result.stderr  # type: ignore[attr-defined]


def test_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-should-not-leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    result = _run(tmp_path, "import os; print(sorted(os.environ))")
    assert "ANTHROPIC_API_KEY" not in result.stdout  # type: ignore[attr-defined]
    assert "AWS_SECRET_ACCESS_KEY" not in result.stdout  # type: ignore[attr-defined]


@pytest.mark.skipif(not network_isolation_available(), reason="unshare -rn not permitted here")
def test_commands_have_no_network(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = (
        "import socket, sys\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    print('connected')\nexcept OSError as e:\n    print('blocked', e)\n"
    )
    try:
        isolated = _run(tmp_path, code)
        open_net = _run(tmp_path, code, isolate_network=False)
    finally:
        server.close()
    assert isolated.stdout.startswith("blocked")  # type: ignore[attr-defined]
    assert isolated.network_isolated  # type: ignore[attr-defined]
    assert open_net.stdout.startswith("connected")  # type: ignore[attr-defined]


def test_a_missing_command_is_reported_as_not_found(tmp_path: Path) -> None:
    result = run_command(
        ["no-such-command-here"], cwd=tmp_path, home=tmp_path / "home", limits=CommandLimits()
    )
    assert result.exit_code == 127
    assert "command not found: no-such-command-here" in result.stderr


def test_commands_start_without_python_fork_hooks(tmp_path: Path) -> None:
    """No preexec_fn: a fork hook registered in this process (as lancedb does) never runs."""
    import os

    calls: list[int] = []
    os.register_at_fork(before=lambda: calls.append(1))
    result = _run(tmp_path, "print('ok')", memory_mb=512)
    assert result.stdout.strip() == "ok"  # type: ignore[attr-defined]
    assert calls == []
