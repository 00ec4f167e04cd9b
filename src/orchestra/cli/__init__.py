"""The command-line interface: a thin shell over the library.

Commands parse their arguments, call the library and present the result. Errors derived
from :class:`orchestra.errors.OrchestraError` are shown as a message and a fix
(:func:`orchestra.cli.output.fail`), exit code 2; a run that failed exits 1 (docs/cli.md).
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Console-script entry point."""
    from orchestra.cli.app import app
    from orchestra.cli.output import USER_ERROR, print_error
    from orchestra.errors import OrchestraError

    try:
        app()
    except OrchestraError as exc:
        print_error(exc)
        sys.exit(USER_ERROR)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["main"]
