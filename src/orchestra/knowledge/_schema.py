"""Arrow schemas of the LanceDB tables and conversion between rows and entries."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from orchestra.knowledge.models import Entry, EntryId, Source

ENTRIES = "entries"
META = "meta"
FILES = "files"

_TS = pa.timestamp("us", tz="UTC")


def entries_schema(dimension: int) -> pa.Schema:
    """Columns of the ``entries`` table; ``vector`` has the embedding model's dimension."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("title", pa.string()),
            pa.field("search_text", pa.string()),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("project", pa.string(), nullable=False),
            pa.field("team", pa.string()),
            pa.field("source_file", pa.string()),
            pa.field("source_start_line", pa.int32()),
            pa.field("source_end_line", pa.int32()),
            pa.field("source_run", pa.string()),
            pa.field("source_agent", pa.string()),
            pa.field("source_session", pa.string()),
            pa.field("origin", pa.string()),
            pa.field("created_at", _TS),
            pa.field("updated_at", _TS),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("content_hash", pa.string()),
            pa.field("redactions", pa.list_(pa.string())),
            pa.field("vector", pa.list_(pa.float32(), dimension)),
        ]
    )


META_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("value", pa.string())])
FILES_SCHEMA = pa.schema(
    [
        pa.field("project", pa.string()),
        pa.field("path", pa.string()),
        pa.field("file_hash", pa.string()),
        pa.field("chunks", pa.int32()),
        pa.field("ingested_at", _TS),
    ]
)

ENTRY_COLUMNS = [f.name for f in entries_schema(1) if f.name != "vector"]

_IDENT_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")


def searchable_text(title: str, text: str) -> str:
    """What BM25 indexes: title, text, and the words inside code identifiers.

    ``getUserName`` and ``get_user_name`` become ``get user name`` as well, so a query in
    plain words matches code; the tokenizer alone would keep them as one token.
    """
    words: list[str] = []
    seen: set[str] = set()
    for ident in _IDENT.findall(f"{title}\n{text}"):
        if ident in seen:
            continue
        seen.add(ident)
        parts = _IDENT_PART.findall(ident)
        if len(parts) > 1:
            words.append(" ".join(p.lower() for p in parts))
    extra = "\n".join(words)
    return f"{title}\n{text}\n{extra}" if extra else f"{title}\n{text}"


def embedding_text(title: str, text: str) -> str:
    """What the embedding model sees: the title (qualified name, heading) then the text."""
    return f"{title}\n{text}" if title else text


def entry_from_row(row: dict[str, Any]) -> Entry:
    """An :class:`Entry` from a LanceDB result row."""

    def ts(value: Any) -> datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.fromtimestamp(0, UTC)

    return Entry(
        id=EntryId(row["id"]),
        text=row["text"],
        kind=row["kind"],
        project=row["project"],
        team=row.get("team"),
        source=Source(
            file=row.get("source_file"),
            start_line=row.get("source_start_line"),
            end_line=row.get("source_end_line"),
            run=row.get("source_run"),
            agent=row.get("source_agent"),
            session=row.get("source_session"),
            origin=row.get("origin") or "manual",
        ),
        created_at=ts(row.get("created_at")),
        updated_at=ts(row.get("updated_at")),
        tags=tuple(row.get("tags") or ()),
        title=row.get("title") or "",
        content_hash=row.get("content_hash") or "",
        redactions=tuple(row.get("redactions") or ()),
    )


def sql_string(value: str) -> str:
    """A SQL string literal for a LanceDB ``where`` clause (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


IN_LIST_MAX = 200
"""Values per ``IN (...)`` list, so one ``where`` clause stays a modest size."""


def sql_in_lists(values: Sequence[str], size: int = IN_LIST_MAX) -> Iterator[str]:
    """``values`` as quoted, comma-separated lists for ``IN (...)``, ``size`` at a time."""
    for start in range(0, len(values), size):
        yield ", ".join(sql_string(v) for v in values[start : start + size])
