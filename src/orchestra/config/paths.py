"""Where Orchestra keeps its files.

The state folder (database, key pepper, ledger journal, secrets, knowledge) belongs to a
project, not to the folder a command happens to run in. It is, in order:

1. ``$ORCHESTRA_HOME``;
2. ``.orchestra/`` beside the configuration file: ``$ORCHESTRA_CONFIG``, else the nearest
   ``orchestra.yaml`` at or above the working folder;
3. the nearest existing ``.orchestra/`` at or above the working folder;
4. ``.orchestra/`` in the working folder (created only when something is written).

So a command run from a subfolder of a project opens the project's database and key
pepper, never a new, empty pair.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from orchestra.errors import StoreError

CONFIG_FILENAME = "orchestra.yaml"
STATE_DIRNAME = ".orchestra"


def orchestra_home(cwd: Path | None = None, *, config: Path | None = None) -> Path:
    """The state folder (see the module's docstring); ``config`` is a configuration file
    given explicitly (``--config``), which wins over the search. Creates nothing."""
    env = os.environ.get("ORCHESTRA_HOME")
    if env:
        return Path(env).expanduser().resolve()
    config_file = config or find_config(cwd)
    if config_file is not None:
        return config_file.expanduser().resolve().parent / STATE_DIRNAME
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / STATE_DIRNAME
        if candidate.is_dir():
            return candidate
    return here / STATE_DIRNAME


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


def default_database_url(cwd: Path | None = None, *, config: Path | None = None) -> str:
    """``$ORCHESTRA_DATABASE_URL`` or a SQLite file under the state folder."""
    env = os.environ.get("ORCHESTRA_DATABASE_URL")
    if env:
        return env
    return f"sqlite:///{orchestra_home(cwd, config=config) / 'orchestra.db'}"


def database_file(url: str) -> Path | None:
    """The file behind a SQLite URL; ``None`` for in-memory SQLite and other databases."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "")


def unborn_database(url: str) -> bool:
    """Whether ``url`` names a SQLite file that does not exist yet (nothing recorded)."""
    path = database_file(url)
    return path is not None and not path.exists()


def existing_database_url(url: str) -> str:
    """``url``, unless it names a SQLite file that does not exist yet: read-only commands
    open existing state only, they create nothing. Raises :class:`StoreError`."""
    if unborn_database(url):
        raise StoreError(
            f"there is no Orchestra database at {database_file(url)} (nothing has been "
            "recorded here)",
            hint="run the command in the project (the folder of its orchestra.yaml or a "
            "subfolder), or point at the state with ORCHESTRA_HOME, --config or --database",
        )
    return url
