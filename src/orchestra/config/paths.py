"""Where Orchestra keeps its files."""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_FILENAME = "orchestra.yaml"


def orchestra_home(cwd: Path | None = None) -> Path:
    """The state folder: ``$ORCHESTRA_HOME`` or ``.orchestra/`` in the working folder."""
    env = os.environ.get("ORCHESTRA_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return (cwd or Path.cwd()).resolve() / ".orchestra"


def find_config(cwd: Path | None = None) -> Path | None:
    """``$ORCHESTRA_CONFIG``, else the nearest ``orchestra.yaml`` at or above ``cwd``."""
    env = os.environ.get("ORCHESTRA_CONFIG")
    if env:
        return Path(env).expanduser().resolve()
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


def default_database_url(cwd: Path | None = None) -> str:
    """``$ORCHESTRA_DATABASE_URL`` or a SQLite file under the state folder."""
    env = os.environ.get("ORCHESTRA_DATABASE_URL")
    if env:
        return env
    return f"sqlite:///{orchestra_home(cwd) / 'orchestra.db'}"
