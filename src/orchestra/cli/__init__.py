"""The command-line interface: a thin shell over the library.

Commands parse their arguments, call the library and present the result. Errors derived
from :class:`orchestra.errors.OrchestraError` are shown as a message and a fix, exit code 2.
"""

from __future__ import annotations

import sys

from orchestra.errors import OrchestraError


def main() -> None:
    """Console-script entry point."""
    from orchestra.cli.app import app
    from orchestra.cli.output import error_console

    try:
        app()
    except OrchestraError as exc:
        error_console().print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            error_console().print(f"[bold]fix:[/] {exc.hint}", highlight=False)
        sys.exit(2)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["main"]
