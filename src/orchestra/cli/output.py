"""Shared presentation helpers: consoles, JSON output, and the one error printer.

Exit codes (``docs/cli.md``): 0 done; :data:`FAILED` (1) the command ran and its answer is
no (a pipeline run failed or was stopped by its budget, a check found errors);
:data:`USER_ERROR` (2) the user can fix the input, the configuration or the name and try
again (Click's usage errors exit 2 too); 130 interrupted.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from orchestra.errors import OrchestraError

FAILED = 1
"""Exit code of a command that ran and whose answer is no: a failed or stopped run, a check
that found errors."""
USER_ERROR = 2
"""Exit code of an error the user can fix: bad input or configuration, an unknown name."""


def console() -> Console:
    """A console for results, on stdout."""
    return Console()


def error_console() -> Console:
    """A console for errors and progress, on stderr."""
    return Console(stderr=True)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout, for scripts (``--json``)."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_error(error: OrchestraError | str, hint: str | None = None) -> None:
    """Print ``error: <message>`` and ``  fix: <hint>`` on stderr (``hint`` is for a
    message given as a string; an error carries its own).

    An :class:`OrchestraError` is printed as its ``str``: the message and its fix, or every
    problem with its fix for the errors that list several (``ConfigInvalid`` ...).
    """
    text = str(error if isinstance(error, OrchestraError) else OrchestraError(error, hint=hint))
    error_console().print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def fail(
    error: OrchestraError | str,
    hint: str | None = None,
    *,
    note: str | None = None,
    code: int = USER_ERROR,
) -> typer.Exit:
    """Print ``error`` (and ``note``, a last line) on stderr; return the exit to raise.

    ``raise fail(exc) from exc`` for an error the user can fix (exit 2);
    ``code=FAILED`` when the command ran and its answer is no.
    """
    print_error(error, hint)
    if note:
        error_console().print(escape(note), highlight=False, soft_wrap=True)
    return typer.Exit(code)
