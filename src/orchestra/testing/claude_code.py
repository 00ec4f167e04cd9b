"""Running the real Claude Code CLI offline, against a fake upstream or a local gateway.

Tests that prove wire compatibility run the ``claude`` executable itself; these helpers
find it and build an environment in which it can reach only the given base URL.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["CLOSED_PROXY", "find_claude_code", "offline_env"]

CLOSED_PROXY = "http://127.0.0.1:9"
"""A proxy address nothing listens on: traffic sent there fails at once instead of leaving
the machine (port 9 is the discard service, closed on any sane host)."""


def find_claude_code(*extra_dirs: Path) -> str | None:
    """The ``claude`` executable, or None when it is not installed.

    Looked for on ``PATH``, then in the Node install ``make`` puts inside the virtualenv
    (``<venv>/node/bin`` and ``<venv>/node/node_modules/.bin``), then in ``extra_dirs``.
    """
    venv_node = Path(sys.prefix) / "node"
    candidates = [
        shutil.which("claude"),
        *(
            str(folder / "claude")
            for folder in (venv_node / "bin", venv_node / "node_modules" / ".bin", *extra_dirs)
        ),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def offline_env(
    base_url: str, home: Path, *, api_key: str = "test-key", **extra: str
) -> dict[str, str]:
    """An environment for Claude Code that talks to ``base_url`` and nothing else.

    ``home`` becomes ``HOME`` (Claude Code keeps sessions and settings there, so a test
    gets its own). Auto-update and non-essential traffic are off, and every address but
    loopback goes to :data:`CLOSED_PROXY`. ``extra`` variables are added last.
    """
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "HTTPS_PROXY": CLOSED_PROXY,
        "HTTP_PROXY": CLOSED_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        **extra,
    }
