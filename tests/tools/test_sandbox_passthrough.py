"""Which variables the sandbox passes through from Orchestra's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestra.tools import CommandLimits, run_command
from orchestra.tools.sandbox import PASSED_THROUGH, scrubbed_environment


def test_only_the_documented_variables_are_inherited(tmp_path: Path) -> None:
    source = {"TZ": "UTC", "AWS_SECRET_ACCESS_KEY": "x", "JAVA_HOME": "/jdk", "PYTHONPATH": "/p"}
    env = scrubbed_environment(tmp_path, source=source)
    assert env["TZ"] == "UTC"
    assert "TZ" in PASSED_THROUGH
    for name in ("AWS_SECRET_ACCESS_KEY", "JAVA_HOME", "PYTHONPATH"):
        assert name not in env


def test_pass_env_adds_variables_and_extra_wins(tmp_path: Path) -> None:
    source = {"JAVA_HOME": "/jdk", "TZ": "UTC"}
    env = scrubbed_environment(tmp_path, {"TZ": "Europe/Paris"}, ["JAVA_HOME"], source)
    assert env["JAVA_HOME"] == "/jdk"
    assert env["TZ"] == "Europe/Paris"


def test_run_command_passes_named_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_TEST_PASSED", "yes")
    monkeypatch.setenv("ORCH_TEST_HIDDEN", "no")
    result = run_command(
        ["sh", "-c", 'echo "${ORCH_TEST_PASSED:-unset} ${ORCH_TEST_HIDDEN:-unset}"'],
        cwd=tmp_path,
        home=tmp_path / "home",
        limits=CommandLimits(timeout_s=20),
        pass_env=["ORCH_TEST_PASSED"],
    )
    assert result.stdout.strip() == "yes unset"
