"""Keys that name a repository in ``orchestra.yaml`` without colliding.

A repository is named by its resolved path or by its remote URL, never by its folder's
name. Remote URLs are normalised so that ``https://github.com/acme/app.git``,
``git@github.com:acme/app`` and ``github.com/acme/app`` are one key.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!//).+)$")


def normalise_remote(url: str) -> str:
    """``host/owner/name`` from any git remote URL form (lower-case host, no ``.git``)."""
    text = url.strip()
    if _SCHEME.match(text):
        text = _SCHEME.sub("", text)
        text = text.split("@", 1)[1] if "@" in text.split("/", 1)[0] else text
        host, _, path = text.partition("/")
        host = host.split(":", 1)[0]  # drop a port
    elif (scp := _SCP.match(text)) is not None:
        host, path = scp.group("host"), scp.group("path")
    else:
        host, _, path = text.partition("/")
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    return f"{host.lower()}/{path}" if path else host.lower()


def normalise_key(key: str) -> str:
    """A configured key in its canonical form: a resolved path, or a normalised remote."""
    if key.startswith(("/", "~")):
        return str(Path(key).expanduser().resolve())
    return normalise_remote(key)


def remote_urls(repo: Path) -> list[str]:
    """The repository's remote URLs (``origin`` first), from ``git remote -v``."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), "remote", "-v"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    urls: list[str] = []
    for line in sorted(proc.stdout.splitlines(), key=lambda s: not s.startswith("origin")):
        parts = line.split()
        if len(parts) >= 2 and parts[1] not in urls:
            urls.append(parts[1])
    return urls


def repository_keys(repo: Path) -> list[str]:
    """Every canonical key ``repo`` may be configured under: its path, then its remotes."""
    keys = [str(repo.resolve())]
    keys += [normalise_remote(url) for url in remote_urls(repo)]
    return list(dict.fromkeys(keys))
