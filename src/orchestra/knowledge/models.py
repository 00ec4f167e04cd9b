"""Values the knowledge store takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NewType, get_args

EntryId = NewType("EntryId", str)
"""Identifier of one stored entry."""

Kind = Literal["decision", "convention", "pattern", "bug", "api", "code", "doc", "note"]
KINDS: tuple[str, ...] = get_args(Kind)

SearchMode = Literal["hybrid", "vector", "text"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)


@dataclass(frozen=True)
class Source:
    """Where an entry came from. Every field is optional; set what is known."""

    file: str | None = None
    """Path relative to the ingested root (or as given)."""
    start_line: int | None = None
    end_line: int | None = None
    run: str | None = None
    """Pipeline run id (engine domain)."""
    agent: str | None = None
    session: str | None = None
    """Claude Code session id."""
    origin: str = "manual"
    """What stored it: ``manual``, ``ingest``, ``hook``, ``agent``, ``pipeline``."""


@dataclass(frozen=True)
class Entry:
    """One piece of knowledge."""

    id: EntryId
    text: str
    kind: str
    project: str
    team: str | None
    source: Source
    created_at: datetime
    updated_at: datetime
    tags: tuple[str, ...] = ()
    title: str = ""
    """Qualified name of a code chunk or heading path of a document section."""
    content_hash: str = ""
    """sha256 of the stored text (after redaction)."""
    redactions: tuple[str, ...] = field(default=())
    """Kinds of secret redacted from the text before it was stored."""


@dataclass(frozen=True)
class Hit:
    """A search result: the entry and its score (higher is better; scale depends on mode)."""

    entry: Entry
    score: float


@dataclass(frozen=True)
class StoreStats:
    """Counts for ``orchestra kb stats``."""

    total: int
    by_kind: dict[str, int]
    by_project: dict[str, int]
    embedding_model: str
    dimension: int
    location: str
    files_tracked: int


@dataclass(frozen=True)
class PruneResult:
    """What ``prune`` removed, per kind."""

    removed: dict[str, int]

    @property
    def total(self) -> int:
        """Entries removed across kinds."""
        return sum(self.removed.values())
