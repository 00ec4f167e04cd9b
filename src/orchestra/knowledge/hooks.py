"""The ``hooks`` block Orchestra adds to Claude Code's ``.claude/settings.json``."""

from __future__ import annotations

import shlex
import sys
from typing import Any

PRE_COMPACT_TIMEOUT_S = 30
SESSION_START_TIMEOUT_S = 30


def hook_command(event: str, python: str | None = None) -> str:
    """Shell command Claude Code runs for ``event`` (``pre-compact`` or ``session-start``).

    ``python -m orchestra.knowledge.hook`` rather than the ``orchestra`` CLI: it skips
    loading every command group, which matters for a hook on the session's start path.
    """
    interpreter = python or sys.executable
    return f"{shlex.quote(interpreter)} -m orchestra.knowledge.hook {event}"


def claude_code_hooks(python: str | None = None) -> dict[str, Any]:
    """``{"PreCompact": [...], "SessionStart": [...]}`` for ``settings.json``'s ``hooks``.

    ``python`` is the interpreter with Orchestra installed (default: the current one).
    Timeouts are in seconds, as Claude Code expects; each hook also bounds itself.
    """
    return {
        "PreCompact": [
            {
                "matcher": "",
                "hooks": [
                    {
                        "type": "command",
                        "command": hook_command("pre-compact", python),
                        "timeout": PRE_COMPACT_TIMEOUT_S,
                    }
                ],
            }
        ],
        "SessionStart": [
            {
                "matcher": "",
                "hooks": [
                    {
                        "type": "command",
                        "command": hook_command("session-start", python),
                        "timeout": SESSION_START_TIMEOUT_S,
                    }
                ],
            }
        ],
    }
