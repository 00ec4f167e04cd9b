"""Helpers for test and benchmark worker processes."""

from __future__ import annotations

import os
from pathlib import Path


def write_ready(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` all at once (a temporary file renamed over it): a process
    waiting for ``path`` to exist then reads it whole, never the empty file that
    ``write_text`` creates before it writes (a soak once read an empty executor id there
    and took every worker's claimed runs for a dead worker's)."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text)
    os.replace(partial, target)
