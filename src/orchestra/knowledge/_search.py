"""Reading entries: filters, the vector and BM25 retrievers and their fusion, listings."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from orchestra.errors import KnowledgeError
from orchestra.knowledge import _schema as sch
from orchestra.knowledge._tables import EntryTables
from orchestra.knowledge._writing import check_kind
from orchestra.knowledge.fusion import reciprocal_rank_fusion
from orchestra.knowledge.models import SEARCH_MODES, Entry, Hit, SearchMode

CANDIDATES = 50
"""Each retriever contributes at least this many candidates to hybrid fusion."""


class SearchWorkers:
    """The worker threads hybrid search runs BM25 on, started on first use."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor:
        """The pool, created if needed."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kb-fts")
            return self._executor

    def close(self) -> None:
        """Stop the threads; a later search starts new ones."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None


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
    workers: SearchWorkers,
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
    table = tables.reader(for_vectors=mode != "text")
    if table is None:
        return []
    n = max(k * 4, CANDIDATES) if mode == "hybrid" else k

    # Both retrievers return only row addresses and scores; the rows themselves are read
    # once, for the final ``k`` (reading and converting every candidate's columns cost
    # more than the searches). Addresses identify rows within one table version, and
    # ``table`` is one version for the whole query (the reader never refreshes it in
    # place), so they are safe to fuse and to read back.
    def text_search() -> list[tuple[int, float]]:
        q = table.search(query, query_type="fts", fts_columns="search_text")
        if where:
            q = q.where(where, prefilter=True)
        found = q.select(["_score"]).with_row_id(True).limit(n).to_arrow()
        return list(zip(found["_rowid"].to_pylist(), found["_score"].to_pylist(), strict=True))

    vector_hits: list[tuple[int, float]] = []
    text_hits: list[tuple[int, float]] = []
    # In hybrid mode BM25 runs in a worker while this thread embeds the query and
    # searches vectors: the latency is the longer of the two, not their sum.
    pending = workers.executor().submit(text_search) if mode == "hybrid" else None
    if mode in ("hybrid", "vector"):
        vector = tables.embedder.embed([query])[0]
        q = table.search(vector, vector_column_name="vector").distance_type("cosine")
        if where:
            q = q.where(where, prefilter=True)
        found = q.select(["_distance"]).with_row_id(True).limit(n).to_arrow()
        distances = found["_distance"].to_pylist()
        vector_hits = [
            (r, 1.0 - d) for r, d in zip(found["_rowid"].to_pylist(), distances, strict=True)
        ]
    if pending is not None:
        text_hits = pending.result()
    elif mode == "text":
        text_hits = text_search()
    chosen: list[tuple[int, float]]
    if mode == "vector":
        chosen = vector_hits
    elif mode == "text":
        chosen = text_hits
    else:
        rankings = [[r for r, _ in vector_hits], [r for r, _ in text_hits]]
        chosen = reciprocal_rank_fusion(rankings)[:k]
    entries = _read_rows(table, [r for r, _ in chosen])
    return [Hit(entries[r], score) for r, score in chosen if r in entries]


def _read_rows(table: Any, row_ids: list[int]) -> dict[int, Entry]:
    """The entries at these row addresses, keyed by address, in one read."""
    if not row_ids:
        return {}
    rows = table.take_row_ids(row_ids).select(sch.ENTRY_COLUMNS).with_row_id().to_list()
    return {int(row["_rowid"]): sch.entry_from_row(row) for row in rows}


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
