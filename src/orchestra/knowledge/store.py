"""The knowledge store: entries in LanceDB, searched by vector, BM25 or both.

:class:`KnowledgeStore` is the public face; the work is done in private modules that each
hold one concern: ``_tables`` (the tables and the embedding-model record), ``_writing``
(validation, redaction, de-duplication), ``_search`` (filters, retrievers, fusion) and
``_maintenance`` (deletion, pruning, statistics, indexes, re-embedding, file records).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from orchestra.config.knowledge import KnowledgeSection
from orchestra.config.paths import orchestra_home
from orchestra.errors import KnowledgeError
from orchestra.knowledge import _maintenance, _search, _writing
from orchestra.knowledge import _schema as sch
from orchestra.knowledge._maintenance import VECTOR_INDEX_MIN_ROWS
from orchestra.knowledge._tables import EntryTables
from orchestra.knowledge._writing import MAX_TEXT_CHARS, NewEntry
from orchestra.knowledge.embeddings import Embedder, Vectors
from orchestra.knowledge.models import (
    KINDS,
    Entry,
    EntryId,
    Hit,
    PruneResult,
    SearchMode,
    Source,
    StoreStats,
)

__all__ = [
    "MAX_TEXT_CHARS",
    "VECTOR_INDEX_MIN_ROWS",
    "KnowledgeStore",
    "NewEntry",
    "default_location",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def _in_worker_thread(
    method: Callable[Concatenate[KnowledgeStore, _P], _R], doc: str
) -> Callable[Concatenate[KnowledgeStore, _P], Coroutine[Any, Any, _R]]:
    """An async twin of ``method`` with the same parameters, run with ``asyncio.to_thread``
    (embedding and LanceDB calls block, and embedding is CPU-bound)."""

    async def threaded(self: KnowledgeStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return await asyncio.to_thread(method, self, *args, **kwargs)

    # Copied first so that ``inspect.signature`` and ``help()`` show the method's parameters.
    functools.update_wrapper(threaded, method)
    threaded.__doc__ = doc
    threaded.__name__ = f"a{method.__name__}"
    threaded.__qualname__ = f"KnowledgeStore.a{method.__name__}"
    return threaded


def default_location(config: KnowledgeSection | None = None) -> str:
    """``knowledge.path`` or ``$ORCHESTRA_HOME/knowledge``."""
    if config is not None and config.path:
        return config.path
    return str(orchestra_home() / "knowledge")


def _is_local(location: str) -> bool:
    return "://" not in location or location.startswith("file://")


class KnowledgeStore:
    """Entries with embeddings in a LanceDB database (a directory or an object-store URI).

    Open with :meth:`open`. Vectors of different embedding models are never mixed: the
    model that made the table's vectors is recorded, and a different configured model is
    an error until ``orchestra kb reembed`` converts the table.
    """

    def __init__(
        self,
        db: Any,
        location: str,
        config: KnowledgeSection,
        *,
        embedder: Embedder | None = None,
        clock: Callable[[], datetime] = _now,
        id_factory: Callable[[], str] = _new_id,
    ) -> None:
        self.location = location
        self.config = config
        self._tables = EntryTables(
            db, location, config.embedding, embedder, config.memory_scan_max_rows
        )
        self._clock = clock
        self._id_factory = id_factory

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path_or_uri: str | Path | None = None,
        config: KnowledgeSection | None = None,
        *,
        embedder: Embedder | None = None,
        clock: Callable[[], datetime] = _now,
        id_factory: Callable[[], str] = _new_id,
    ) -> KnowledgeStore:
        """Open (creating if needed) the store at a directory or URI.

        ``path_or_uri`` defaults to ``knowledge.path`` or ``$ORCHESTRA_HOME/knowledge``.
        Object-storage URIs (``s3://``, ``gs://``, ``az://``) are passed to LanceDB as they
        are, with ``knowledge.storage_options``.
        """
        import lancedb

        config = config or KnowledgeSection()
        location = str(path_or_uri) if path_or_uri is not None else default_location(config)
        if _is_local(location):
            local = Path(location.removeprefix("file://")).expanduser()
            try:
                local.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise KnowledgeError(
                    f"cannot create the knowledge store folder {local}: {exc.strerror}",
                    hint="set knowledge.path (or ORCHESTRA_HOME) to a writable folder",
                ) from exc
        try:
            db = lancedb.connect(location, storage_options=dict(config.storage_options) or None)
        except Exception as exc:
            raise KnowledgeError(
                f"cannot open the knowledge store at {location}: {exc}",
                hint="check knowledge.path and knowledge.storage_options",
            ) from exc
        return cls(db, location, config, embedder=embedder, clock=clock, id_factory=id_factory)

    @property
    def embedder(self) -> Embedder:
        """The configured embedding model (built on first use)."""
        return self._tables.embedder

    def recorded_model(self) -> tuple[str, int] | None:
        """``(model name, dimension)`` of the vectors stored, or None for an empty store."""
        return self._tables.recorded_model()

    def close(self) -> None:
        """Release resources held for searching; the store stays usable.

        Frees the in-memory copy of the vectors (``knowledge.memory_scan_max_rows``);
        the next search loads it again.
        """
        self._tables.vectors.clear()

    # -- writing ---------------------------------------------------------------------------

    def add(
        self,
        text: str,
        kind: str,
        project: str,
        team: str | None = None,
        source: Source | None = None,
        tags: Sequence[str] = (),
        title: str = "",
    ) -> EntryId:
        """Store one entry; returns its id (the existing id when the same text is stored).

        Secrets are redacted first, or the entry is refused with :class:`KnowledgeError`
        (private keys always; everything when ``knowledge.secrets.action`` is ``refuse``).
        """
        item = NewEntry(text, kind, project, team, source or Source(), tuple(tags), title)
        return self.add_many([item])[0]

    def add_many(
        self, items: Sequence[NewEntry], *, vectors: Vectors | None = None
    ) -> list[EntryId]:
        """Store several entries with one batched embedding call; ids in input order.

        ``vectors`` (one row per item, from the store's embedding model applied to
        ``title + "\\n" + text``) skips the embedding step, for imports and benchmarks;
        an item whose text a redaction changed is embedded again all the same.
        """
        return _writing.add_entries(
            self._tables,
            items,
            secrets=self.config.secrets,
            vectors=vectors,
            clock=self._clock,
            new_id=self._id_factory,
        )

    # -- reading ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        project: str | None = None,
        kind: str | None = None,
        k: int = 10,
        mode: SearchMode = "hybrid",
        *,
        team: str | None = None,
        tags: Sequence[str] = (),
    ) -> list[Hit]:
        """The ``k`` best entries for ``query``; filters run inside the search.

        Stores of at most ``knowledge.memory_scan_max_rows`` entries are searched by vector
        exactly, in memory; larger ones by LanceDB (with the vector index once built).

        ``hybrid`` keeps the vector ranking when its best hit is a decision or convention,
        and otherwise fuses the vector and BM25 lists by normalised score, weighted by how
        sure BM25 is of the query (see :func:`~orchestra.knowledge.fusion.kind_aware_fusion`);
        ``vector`` scores
        are cosine similarity; ``text`` scores are BM25.
        """
        return _search.search_entries(
            self._tables,
            query,
            project=project,
            kind=kind,
            k=k,
            mode=mode,
            team=team,
            tags=tags,
        )

    def get(self, entry_id: str) -> Entry | None:
        """The entry with this id, or None."""
        return _search.get_entry(self._tables, entry_id)

    def recent(
        self, project: str, kinds: Sequence[str] = KINDS, limit: int = 10, team: str | None = None
    ) -> list[Entry]:
        """Newest entries of a project, by kind priority (the order of ``kinds``) then age."""
        return _search.recent_entries(self._tables, project, kinds, limit, team)

    # -- async twins (same parameters, run in a worker thread) -------------------------------

    asearch = _in_worker_thread(
        search, ":meth:`search` in a worker thread, for async callers (embedding is CPU-bound)."
    )
    aadd = _in_worker_thread(add, ":meth:`add` in a worker thread, for async callers.")
    aadd_many = _in_worker_thread(
        add_many, ":meth:`add_many` in a worker thread, for async callers."
    )

    # -- deleting and housekeeping ------------------------------------------------------------

    def delete_by_source(
        self,
        *,
        file: str | None = None,
        run: str | None = None,
        agent: str | None = None,
        session: str | None = None,
        project: str | None = None,
    ) -> int:
        """Delete every entry from this source; returns how many were deleted."""
        where = _maintenance.source_clause(
            file=file, run=run, agent=agent, session=session, project=project
        )
        return _maintenance.delete_where(self._tables, where)

    def delete(self, entry_id: str) -> bool:
        """Delete one entry by id; True when it existed."""
        return _maintenance.delete_where(self._tables, f"id = {sch.sql_string(entry_id)}") > 0

    def prune(
        self,
        *,
        retention_days: dict[str, int] | None = None,
        project: str | None = None,
        now: datetime | None = None,
    ) -> PruneResult:
        """Delete entries older than their kind's retention (``knowledge.retention_days``)."""
        retention = self.config.retention_days if retention_days is None else retention_days
        return _maintenance.prune(self._tables, retention, project, now or self._clock())

    def stats(self) -> StoreStats:
        """Counts by kind and project, and the recorded embedding model."""
        return _maintenance.stats(self._tables)

    def optimize(self, *, vector_index: bool = True) -> None:
        """Fold new rows into the indexes and compact small files (after bulk writes).

        Builds the vector index once the store reaches ``VECTOR_INDEX_MIN_ROWS`` entries.
        """
        _maintenance.optimize(self._tables, vector_index=vector_index)

    def create_vector_index(self, *, min_rows: int = VECTOR_INDEX_MIN_ROWS) -> bool:
        """Build an approximate (IVF-HNSW, scalar-quantised) vector index for large stores.

        Below ``min_rows`` an exact scan is fast enough and exact, so nothing is built;
        returns whether an index was built. Filters still run inside the query.
        """
        return _maintenance.create_vector_index(self._tables, min_rows=min_rows)

    def reembed(self, *, progress: Callable[[int, int], None] | None = None) -> int:
        """Re-compute every vector with the configured model; returns entries converted.

        The table is rewritten as one new LanceDB version, so readers see either all old
        or all new vectors, never a mix.
        """
        return _maintenance.reembed(self._tables, progress)

    # -- ingestion bookkeeping (used by orchestra.knowledge.ingest) --------------------------

    def file_hashes(self, project: str) -> dict[str, str]:
        """``{path: sha256}`` of the files ingested for a project."""
        return _maintenance.file_hashes(self._tables, project)

    def record_files(self, project: str, files: Iterable[tuple[str, str, int]]) -> None:
        """Remember ``(path, sha256, chunks)`` of ingested files (replacing older records)."""
        _maintenance.record_files(self._tables, project, files, self._clock)

    def forget_files(self, project: str, paths: Sequence[str]) -> None:
        """Drop the ingestion records of these files (not their entries)."""
        _maintenance.forget_files(self._tables, project, paths)

    def delete_files_entries(self, project: str, paths: Sequence[str]) -> int:
        """Delete the entries ingested from these files of a project."""
        return _maintenance.delete_files_entries(self._tables, project, paths)
