"""What a page builder is handed: who asks, the data sources, the query."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from orchestra.analytics import Asker, InsightSettings
from orchestra.errors import ApiError
from orchestra.identity import Identity
from orchestra.org import OrgTree, load_org
from orchestra.server.api.insight import asker_of
from orchestra.store import Database

if TYPE_CHECKING:
    from orchestra.server.api import ApiContext

MAX_WEEKS = 26


class BadQuery(ApiError):
    """A page's query parameter is not one it understands."""

    status = 400


@dataclass(frozen=True)
class Viewer:
    """Who looks: the authenticated identity and the principal insight checks."""

    identity: Identity
    asker: Asker

    @classmethod
    def of(cls, identity: Identity) -> Viewer:
        """Insight's principal for ``identity`` (:func:`asker_of`, as the ``/api/insight``
        routes resolve it)."""
        return cls(identity, asker_of(identity))

    @property
    def name(self) -> str:
        """The name the header shows."""
        return self.identity.principal.id

    @property
    def is_admin(self) -> bool:
        """Whether the viewer is an admin."""
        return "admin" in self.identity.principal.roles


@dataclass
class PageContext:
    """A page's inputs."""

    api: ApiContext
    viewer: Viewer
    query: Mapping[str, str]
    path: Mapping[str, str]

    @property
    def database(self) -> Database:
        """The server's database."""
        return self.api.orchestra().database

    @property
    def settings(self) -> InsightSettings:
        """``insight:`` of the configuration in force."""
        return InsightSettings.from_config(self.api.current_config.insight)

    def tree(self) -> OrgTree | None:
        """The stored organisation (``None`` before ``orchestra org sync``)."""
        return load_org(self.database)

    def param(self, name: str, default: str | None = None) -> str | None:
        """A query parameter (an empty one counts as absent)."""
        return self.query.get(name) or default

    def weeks(self) -> int:
        """``weeks`` (1-26, default 8): how many weeks the charts show."""
        text = self.param("weeks", "8") or "8"
        if not text.isdigit() or not 1 <= int(text) <= MAX_WEEKS:
            raise BadQuery(f"weeks must be 1-{MAX_WEEKS}, not {text!r}", hint="e.g. ?weeks=12")
        return int(text)


def link(path: str, **params: str | None) -> str:
    """A dashboard URL with the given query (``None`` values left out)."""
    query = urlencode({k: v for k, v in params.items() if v})
    return f"/dashboard{path}" + (f"?{query}" if query else "")


def segment(text: str) -> str:
    """``text`` as one path segment."""
    return quote(text, safe="")
