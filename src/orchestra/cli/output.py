"""Shared presentation helpers: consoles and JSON output."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console


def console() -> Console:
    """A console for results, on stdout."""
    return Console()


def error_console() -> Console:
    """A console for errors and progress, on stderr."""
    return Console(stderr=True)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout, for scripts (``--json``)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
