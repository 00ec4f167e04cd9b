"""Configuration section ``server``: what ``orchestra serve``'s REST API may work on.

A caller of ``POST /api/v1/runs`` names a repository, never a path: the server runs only
on the repositories listed here, by name (see ``docs/api.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints

from orchestra.config.models import StrictModel

REPOSITORY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
"""A repository's name in ``server.repositories``: a single path-free word."""
RepositoryName = Annotated[str, StringConstraints(pattern=REPOSITORY_NAME)]


class ServerSection(StrictModel):
    """The REST API's allow-lists."""

    repositories: dict[RepositoryName, Path] = Field(default_factory=dict)
    """Repositories runs may be started on through the API, by name: ``{name: path}``.
    A relative path is relative to ``orchestra.yaml``'s folder. Empty: the API starts
    no runs."""

    def repository_names(self) -> list[str]:
        """The names a caller may use, sorted."""
        return sorted(self.repositories)


__all__ = ["REPOSITORY_NAME", "ServerSection"]
