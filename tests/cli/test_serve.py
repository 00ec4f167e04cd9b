"""``orchestra serve`` / ``orchestra gateway`` as real processes: combined app, SIGHUP reload."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from orchestra.accounting import Accounting
from orchestra.cli.app import app
from orchestra.config import load_config
from orchestra.store import open_database
from tests.server.helpers import free_port, start_gateway, start_upstream, stop, write_config


def test_bad_configuration_fails_before_serving(tmp_path: Path) -> None:
    bad = tmp_path / "orchestra.yaml"
    bad.write_text("gateway:\n  port: not-a-port\n")
    result = CliRunner().invoke(app, ["gateway", "--config", str(bad)])
    assert result.exit_code == 2
    assert "gateway.port" in result.output


@pytest.mark.slow
def test_serve_runs_gateway_and_api_and_reloads_on_sighup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("ORCHESTRA_HOME", str(home))
    upstream, upstream_url = start_upstream()
    database_url = f"sqlite:///{tmp_path / 'orchestra.db'}"
    config_path = write_config(tmp_path, upstream_url)
    database = open_database(database_url)
    accounting = Accounting(database, load_config(config_path))
    key, _ = accounting.keys.create("alice", "payments")
    port = free_port()
    server = start_gateway(config_path, database_url, home, port, command="serve")
    url = f"http://127.0.0.1:{port}"
    try:
        assert httpx.get(f"{url}/api").json()["name"] == "orchestra"
        body = {"model": "quick", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        before = httpx.post(f"{url}/v1/messages", json=body, headers={"x-api-key": key})
        assert before.status_code == 404
        assert "quick" in before.json()["error"]["message"]
        data = yaml.safe_load(config_path.read_text())
        data["gateway"]["aliases"] = {"quick": "haiku"}
        config_path.write_text(yaml.safe_dump(data))
        server.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while True:
            after = httpx.post(f"{url}/v1/messages", json=body, headers={"x-api-key": key})
            if after.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert after.status_code == 200
        assert after.headers["x-orchestra-served-model"] == "claude-haiku-4-5"
        assert server.poll() is None  # SIGHUP reloaded, it did not stop the server
    finally:
        stop(server)
        stop(upstream)
        accounting.close()
        database.dispose()


@pytest.mark.slow
def test_two_workers_start_on_a_fresh_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = tmp_path / "orchestra.yaml"
    config.write_text("gateway:\n  port: 0\n")
    port = free_port()
    database_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    server = start_gateway(config, database_url, home, port, extra=["--workers", "2"])
    try:
        deadline = time.monotonic() + 20
        log = home / f"gateway-{port}.log"
        while log.read_text().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert "Traceback" not in log.read_text()
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    finally:
        stop(server)


def _loaded_after_importing(modules: list[str]) -> list[str]:
    """Modules loaded by importing ``modules`` in a fresh interpreter (this test process
    has loaded orchestra.testing already)."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()


def test_serve_run_and_the_gateway_load_neither_the_demo_nor_the_test_doubles() -> None:
    # Everything `orchestra run`, `orchestra serve` and `orchestra gateway` import.
    loaded = _loaded_after_importing(
        [
            "orchestra.cli.app",
            "orchestra.cli.engine",
            "orchestra.cli.serve",
            "orchestra.server.app",
            "orchestra.server.resuming",
            "orchestra.app",
            "orchestra.pipelines",
            "orchestra.gateway",
        ]
    )
    assert "orchestra.server.resuming" in loaded  # the check ran on what it names
    assert [m for m in loaded if m.startswith(("orchestra.demo", "orchestra.testing"))] == []


def test_the_gateway_alone_does_not_load_the_engine() -> None:
    # `orchestra gateway` workers build their gateway through the composition root, which
    # loads the engine (and DBOS) only when an engine is asked for.
    loaded = _loaded_after_importing(["orchestra.cli.serve", "orchestra.server.app"])
    assert "orchestra.app" in loaded
    assert [m for m in loaded if m.startswith(("dbos", "orchestra.engine"))] == []
