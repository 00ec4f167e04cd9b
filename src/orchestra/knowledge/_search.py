"""Reading entries: filters, the vector and BM25 retrievers and their fusion, listings."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence
from typing import Any

from orchestra.errors import KnowledgeError
from orchestra.knowledge import _schema as sch
from orchestra.knowledge._tables import EntryTables
from orchestra.knowledge._writing import check_kind
from orchestra.knowledge.fusion import kind_aware_fusion
from orchestra.knowledge.models import SEARCH_MODES, Entry, Hit, SearchMode

CANDIDATES = 50
"""Each retriever contributes at least this many candidates to hybrid fusion."""


def filter_clause(
    project: str | None,
    kind: str | None,
    team: str | None = None,
    tags: Sequence[str] = (),
) -> str | None:
    """The LanceDB ``where`` clause for these filters (every value quoted), or None."""
    clauses = []
    if project is not None:
        clauses.append(f"project = {sch.sql_string(project)}")
    if kind is not None:
        check_kind(kind)
        clauses.append(f"kind = {sch.sql_string(kind)}")
    if team is not None:
        clauses.append(f"team = {sch.sql_string(team)}")
    if tags:
        listed = ", ".join(sch.sql_string(t) for t in tags)
        clauses.append(f"array_has_any(tags, [{listed}])")
    return " AND ".join(clauses) or None


def search_entries(
    tables: EntryTables,
    query: str,
    *,
    project: str | None,
    kind: str | None,
    k: int,
    mode: SearchMode,
    team: str | None,
    tags: Sequence[str],
) -> list[Hit]:
    """The ``k`` best entries for ``query`` (see :meth:`KnowledgeStore.search`)."""
    if mode not in SEARCH_MODES:
        raise KnowledgeError(f"unknown search mode {mode!r}", hint="use hybrid, vector or text")
    if not 1 <= k <= 1000:
        raise KnowledgeError(f"k must be between 1 and 1000, got {k}", hint="pass --k 10")
    if not query.strip():
        raise KnowledgeError("empty search query", hint="pass some words to search for")
    where = filter_clause(project, kind, team, tags)
    opened = tables.reader(for_vectors=mode != "text")
    if opened is None:
        return []
    table, version = opened
    n = max(k * 4, CANDIDATES) if mode == "hybrid" else k
    # The searches run as one coroutine on LanceDB's own event-loop thread (the one its
    # synchronous API hands every call to) against the table's async handle: each hop
    # through the synchronous wrappers costs a thread round trip and a schema read, about
    # a millisecond per query at 100,000 entries.
    from lancedb.background_loop import LOOP

    async_table = table._table
    pending: concurrent.futures.Future[list[tuple[int, float]]] | None = None
    if mode in ("hybrid", "text"):
        # BM25 starts now and runs while this thread embeds the query.
        pending = asyncio.run_coroutine_threadsafe(
            _text_search(async_table, query, where, n), LOOP.loop
        )
    vector = tables.embedder.embed([query])[0] if mode != "text" else None
    found: _VectorHits | None = None
    if vector is not None and not tags:
        # Small stores: an exact scan of the in-memory copy, on this thread, while BM25
        # runs on LanceDB's (tags filters are not held in memory: LanceDB scans for them).
        snapshot = tables.vectors.snapshot(async_table, version, LOOP.loop)
        if snapshot is not None:
            named = {"project": project, "kind": kind, "team": team}
            found = snapshot.search(vector, n, {c: v for c, v in named.items() if v is not None})
    finishing = asyncio.run_coroutine_threadsafe(
        _finish(async_table, vector, found, pending, where, n, k), LOOP.loop
    )
    chosen, rows = finishing.result()
    entries = {int(row["_rowid"]): sch.entry_from_row(row) for row in rows}
    return [Hit(entries[r], score) for r, score in chosen if r in entries]


_VectorHits = tuple[list[tuple[int, float]], str | None]
"""Vector search's ``(row address, cosine similarity)`` best first, and its best's kind."""


async def _text_search(
    table: Any, query: str, where: str | None, n: int
) -> list[tuple[int, float]]:
    q = table.query().nearest_to_text(query, columns="search_text")
    if where:
        q = q.where(where)
    found = await q.select(["_score"]).with_row_id().limit(n).to_arrow()
    return list(zip(found["_rowid"].to_pylist(), found["_score"].to_pylist(), strict=True))


async def _vector_search(table: Any, vector: Any, where: str | None, n: int) -> _VectorHits:
    q = table.query().nearest_to(vector).column("vector").distance_type("cosine")
    if where:
        q = q.where(where)  # a prefilter: LanceDB filters before the vector search
    found = await q.select(["_distance", "kind"]).with_row_id().limit(n).to_arrow()
    top_kind = found["kind"][0].as_py() if found.num_rows else None
    distances = found["_distance"].to_pylist()
    hits = [(r, 1.0 - d) for r, d in zip(found["_rowid"].to_pylist(), distances, strict=True)]
    return hits, top_kind


async def _finish(
    table: Any,
    vector: Any,
    found: _VectorHits | None,
    pending: concurrent.futures.Future[list[tuple[int, float]]] | None,
    where: str | None,
    n: int,
    k: int,
) -> tuple[list[tuple[int, float]], list[dict[str, Any]]]:
    """The vector search (unless ``found`` in memory), fusion, one read of the chosen rows.

    Both retrievers return only row addresses and scores: reading and converting every
    candidate's columns cost more than the searches, and fusion drops most of them.
    Addresses identify rows within one table version, and ``table`` is one version for
    the whole query (the cached reader is never refreshed in place, and the in-memory
    copy is synced to that version), so they are safe to fuse and to read back.
    """
    if found is None and vector is not None:
        found = await _vector_search(table, vector, where, n)
    vector_hits, top_kind = found if found is not None else ([], None)
    text_hits = await asyncio.wrap_future(pending) if pending is not None else []
    chosen: list[tuple[int, float]]
    if pending is None:
        chosen = vector_hits
    elif vector is None:
        chosen = text_hits
    else:
        chosen = kind_aware_fusion(vector_hits, text_hits, vector_top_kind=top_kind)[:k]
    if not chosen:
        return chosen, []
    take = table.take_row_ids([r for r, _ in chosen]).select(sch.ENTRY_COLUMNS)
    rows: list[dict[str, Any]] = await take.with_row_id().to_list()
    return chosen, rows


def get_entry(tables: EntryTables, entry_id: str) -> Entry | None:
    """The entry with this id, or None."""
    table = tables.entries(for_vectors=False)
    if table is None:
        return None
    rows = (
        table.search()
        .where(f"id = {sch.sql_string(entry_id)}")
        .select(sch.ENTRY_COLUMNS)
        .limit(1)
        .to_list()
    )
    return sch.entry_from_row(rows[0]) if rows else None


def recent_entries(
    tables: EntryTables, project: str, kinds: Sequence[str], limit: int, team: str | None
) -> list[Entry]:
    """Newest entries of a project, by kind priority (the order of ``kinds``) then age."""
    table = tables.entries(for_vectors=False)
    if table is None or not kinds:
        return []
    for kind in kinds:
        check_kind(kind)
    listed = ", ".join(sch.sql_string(kd) for kd in kinds)
    where = f"project = {sch.sql_string(project)} AND kind IN ({listed})"
    if team is not None:
        where += f" AND team = {sch.sql_string(team)}"
    rows = table.search().where(where).select(sch.ENTRY_COLUMNS).limit(5000).to_list()
    rank = {kd: i for i, kd in enumerate(kinds)}
    entries = [sch.entry_from_row(r) for r in rows]
    entries.sort(key=lambda e: (rank[e.kind], -e.updated_at.timestamp()))
    return entries[:limit]
