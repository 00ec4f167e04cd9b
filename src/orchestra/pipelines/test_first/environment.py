"""Telling a test command that cannot start from tests that fail.

A test command that cannot start (``No module named pytest``, a runner that is not
installed) is the environment's problem: no agent can fix it, and sending its output back
to the test writer as "your tests break the existing ones" wastes every retry and blames
the wrong party. The run stops instead, with the real cause and what to change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from orchestra.tools import CommandResult

FIX_HINT = (
    "install the test runner where the test command runs it, or set engine.test_command "
    "(or engine.repositories) in orchestra.yaml"
)


def _runner_module(command: Sequence[str]) -> tuple[str, str] | None:
    """``(interpreter, module)`` of a ``python -m MODULE ...`` command, else ``None``."""
    if len(command) < 3 or not Path(command[0]).name.startswith("python"):
        return None
    if command[1] != "-m":
        return None
    return command[0], command[2]


def cannot_start(result: CommandResult, command: Sequence[str]) -> str | None:
    """Why ``command`` could not start at all, judged from its ``result``; ``None`` when it
    ran (whatever its tests did)."""
    if result.timed_out:
        return None
    if result.exit_code == 127:
        return f"{command[0]}: command not found"
    if result.exit_code == 126:
        return f"{command[0]}: not executable (permission denied)"
    runner = _runner_module(command)
    if runner is not None and result.exit_code != 0:
        missing = re.search(
            rf"No module named '?{re.escape(runner[1])}'?\s*$", result.stderr, re.MULTILINE
        )
        if missing:
            return f"No module named {runner[1]}"
    return None


def describe(command: Sequence[str], cause: str) -> str:
    """The run's failure reason for a test command that cannot start."""
    return (
        f"the test command cannot start ({' '.join(command)}): {cause}. This is the "
        f"environment, not the agents' work: {FIX_HINT}"
    )
