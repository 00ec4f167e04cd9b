"""Adding entries: validation, redaction, de-duplication and batched embedding."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from orchestra.config.knowledge import SecretsConfig
from orchestra.errors import KnowledgeError
from orchestra.knowledge import _schema as sch
from orchestra.knowledge._tables import EntryTables
from orchestra.knowledge.embeddings import Vectors
from orchestra.knowledge.models import KINDS, EntryId, Source
from orchestra.knowledge.secrets import scrub

MAX_TEXT_CHARS = 100_000
"""Longest text one entry may hold; ingestion splits files below this."""
_NAME = re.compile(r"^[^\x00-\x1f\x7f\s][^\x00-\x1f\x7f]{0,199}$")
"""Project, team and tag names: any printable text (folder names vary); values are always
quoted in queries, so quotes are harmless."""
_DedupeKey = tuple[str, str, str, str]
"""(project, kind, content hash, source file): the same text from the same place is one entry."""


@dataclass(frozen=True)
class NewEntry:
    """An entry to add in a batch (see :meth:`KnowledgeStore.add_many`)."""

    text: str
    kind: str
    project: str
    team: str | None = None
    source: Source = field(default_factory=Source)
    tags: tuple[str, ...] = ()
    title: str = ""


def check_name(what: str, value: str) -> None:
    """Refuse a project, team or tag name that is empty, too long or unprintable."""
    if not _NAME.match(value):
        raise KnowledgeError(
            f"invalid {what} name {value!r}",
            hint=f"use 1-200 printable characters, not starting with a space, for the {what}",
        )


def check_kind(kind: str) -> None:
    """Refuse a kind outside :data:`~orchestra.knowledge.KINDS`."""
    if kind not in KINDS:
        raise KnowledgeError(f"unknown kind {kind!r}", hint=f"use one of: {', '.join(KINDS)}")


def add_entries(
    tables: EntryTables,
    items: Sequence[NewEntry],
    *,
    secrets: SecretsConfig,
    vectors: Vectors | None,
    clock: Callable[[], datetime],
    new_id: Callable[[], str],
) -> list[EntryId]:
    """Store ``items`` with one batched embedding call; ids in input order.

    See :meth:`KnowledgeStore.add_many` for what ``vectors`` does.
    """
    if not items:
        return []
    if vectors is not None and vectors.shape != (len(items), tables.embedder.dimension):
        raise KnowledgeError(
            f"vectors have shape {vectors.shape}, expected "
            f"({len(items)}, {tables.embedder.dimension})",
            hint="pass one vector per item from the store's embedding model",
        )
    prepared: list[tuple[NewEntry, str, tuple[str, ...]]] = []
    for item in items:
        _validate(item)
        scrubbed = scrub(item.text, secrets)
        title = scrub(item.title, secrets)
        digest = hashlib.sha256(scrubbed.text.encode("utf-8")).hexdigest()
        clean = dataclasses.replace(item, text=scrubbed.text, title=title.text)
        kinds = tuple(dict.fromkeys((*scrubbed.kinds, *title.kinds)))
        prepared.append((clean, digest, kinds))
    table = tables.entries(for_vectors=True)
    existing = _existing_hashes(table, [p[1] for p in prepared])
    ids: list[EntryId] = []
    new_rows: list[dict[str, Any]] = []
    to_embed: list[str] = []
    batch_seen: dict[_DedupeKey, EntryId] = {}
    now = clock()
    given: list[Any] = []
    for position, (entry, digest, kinds) in enumerate(prepared):
        key = (entry.project, entry.kind, digest, entry.source.file or "")
        if key in existing:
            ids.append(existing[key])
            continue
        if key in batch_seen:
            ids.append(batch_seen[key])
            continue
        entry_id = EntryId(new_id())
        batch_seen[key] = entry_id
        ids.append(entry_id)
        new_rows.append(_row(entry_id, entry, digest, kinds, now))
        to_embed.append(sch.embedding_text(entry.title, entry.text))
        # A redacted text no longer matches the vector the caller computed for it.
        given.append(vectors[position] if vectors is not None and not kinds else None)
    if new_rows:
        missing = [i for i, v in enumerate(given) if v is None]
        if missing:
            computed = tables.embedder.embed([to_embed[i] for i in missing])
            for i, vector in zip(missing, computed, strict=True):
                given[i] = vector
        for row, vector in zip(new_rows, given, strict=True):
            row["vector"] = vector.tolist()
        table.add(pa.Table.from_pylist(new_rows, schema=table.schema))
        tables.invalidate()
    return ids


def _validate(item: NewEntry) -> None:
    check_kind(item.kind)
    check_name("project", item.project)
    if item.team is not None:
        check_name("team", item.team)
    if not item.text.strip():
        raise KnowledgeError("cannot store an empty entry", hint="pass some text")
    if len(item.text) > MAX_TEXT_CHARS:
        raise KnowledgeError(
            f"entry is {len(item.text)} characters; the limit is {MAX_TEXT_CHARS}",
            hint="split the text into smaller entries (ingest does this for files)",
        )
    for tag in item.tags:
        check_name("tag", tag)


def _row(
    entry_id: EntryId, e: NewEntry, digest: str, kinds: tuple[str, ...], now: datetime
) -> dict[str, Any]:
    return {
        "id": entry_id,
        "text": e.text,
        "title": e.title,
        "search_text": sch.searchable_text(e.title, e.text),
        "kind": e.kind,
        "project": e.project,
        "team": e.team,
        "source_file": e.source.file,
        "source_start_line": e.source.start_line,
        "source_end_line": e.source.end_line,
        "source_run": e.source.run,
        "source_agent": e.source.agent,
        "source_session": e.source.session,
        "origin": e.source.origin,
        "created_at": now,
        "updated_at": now,
        "tags": list(e.tags),
        "content_hash": digest,
        "redactions": list(kinds),
    }


def _existing_hashes(table: Any, hashes: list[str]) -> dict[_DedupeKey, EntryId]:
    found: dict[_DedupeKey, EntryId] = {}
    digests = sorted(set(hashes))
    for chunk in sch.sql_in_lists(digests):
        rows = (
            table.search()
            .where(f"content_hash IN ({chunk})")
            .select(["id", "project", "kind", "content_hash", "source_file"])
            .limit(10 * len(digests) + 10)
            .to_list()
        )
        for r in rows:
            key = (r["project"], r["kind"], r["content_hash"], r["source_file"] or "")
            found[key] = EntryId(r["id"])
    return found
