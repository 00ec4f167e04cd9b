"""What a server worker process sets up for itself."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestra.server.app import GC_THRESHOLDS, OPTIONS_ENV, ServeOptions, app_from_environment


def test_tune_gc_freezes_the_startup_heap_and_raises_the_thresholds() -> None:
    # In a child process: the collector's settings are global to the interpreter.
    code = (
        "import gc, json; from orchestra.server.app import tune_gc; tune_gc(); "
        "print(json.dumps([gc.get_threshold(), gc.get_freeze_count()]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    thresholds, frozen = json.loads(out.stdout)
    assert tuple(thresholds) == GC_THRESHOLDS
    assert frozen > 1000  # modules, classes and configuration built at start-up


def test_worker_app_tunes_gc_at_startup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "orchestra.yaml"
    config.write_text("gateway:\n  port: 0\n")
    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))
    options = ServeOptions(
        include_api=False,
        config_path=str(config),
        database_url=f"sqlite:///{tmp_path / 'o.db'}",
        install_sighup=False,
    )
    monkeypatch.setenv(OPTIONS_ENV, options.to_env())
    app = app_from_environment()
    try:
        assert [hook.__name__ for hook in app.startup_hooks] == ["_tune_gc_hook"]
    finally:
        for hook in app.shutdown_hooks:
            asyncio.run(hook())
