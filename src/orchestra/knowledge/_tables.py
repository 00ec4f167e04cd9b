"""The store's LanceDB tables: opening them, the embedding-model record, the read cache.

Vectors of two embedding models are never mixed: the ``meta`` table records which model
made the ``entries`` vectors, and every vector read or write checks it against the
configured model first.
"""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa

from orchestra.config.knowledge import EmbeddingConfig
from orchestra.errors import KnowledgeError
from orchestra.knowledge import _schema as sch
from orchestra.knowledge._exact import MEMORY_SCAN_MAX_ROWS, VectorCache
from orchestra.knowledge.embeddings import Embedder, embedder_from_config

READ_CACHE_S = 1.0
"""How long a reader reuses the opened entries table and model record."""


class EntryTables:
    """The LanceDB database behind one :class:`~orchestra.knowledge.KnowledgeStore`."""

    def __init__(
        self,
        db: Any,
        location: str,
        embedding: EmbeddingConfig,
        embedder: Embedder | None,
        memory_scan_max_rows: int = MEMORY_SCAN_MAX_ROWS,
    ) -> None:
        self.db = db
        self.location = location
        self._embedding = embedding
        self._embedder = embedder
        self._read_cache: tuple[float, Any, tuple[str, int] | None, int] | None = None
        self.vectors = VectorCache(memory_scan_max_rows)
        """The in-memory copy of the vectors, for exact search of small stores."""

    @property
    def embedder(self) -> Embedder:
        """The configured embedding model (built on first use)."""
        if self._embedder is None:
            self._embedder = embedder_from_config(self._embedding)
        return self._embedder

    def names(self) -> set[str]:
        """Names of the tables that exist."""
        return set(self.db.list_tables().tables)

    def open(self, name: str) -> Any:
        """An existing table."""
        return self.db.open_table(name)

    def invalidate(self) -> None:
        """Forget the cached reader after a write, so this process reads its own writes."""
        self._read_cache = None

    # -- the embedding-model record -----------------------------------------------------------

    def recorded_model(self) -> tuple[str, int] | None:
        """``(model name, dimension)`` of the vectors stored, or None for an empty store."""
        if sch.META not in self.names():
            return None
        rows = self.db.open_table(sch.META).to_arrow().to_pylist()
        meta = {r["key"]: r["value"] for r in rows}
        if "embedding_model" not in meta:
            return None
        return meta["embedding_model"], int(meta["dimension"])

    def write_meta(self, model: str, dimension: int) -> None:
        """Record the model that made the stored vectors."""
        self.invalidate()
        data = pa.Table.from_pylist(
            [
                {"key": "embedding_model", "value": model},
                {"key": "dimension", "value": str(dimension)},
                {"key": "schema_version", "value": "1"},
            ],
            schema=sch.META_SCHEMA,
        )
        if sch.META in self.names():
            # One new table version: readers never see the record half-written.
            self.db.create_table(sch.META, data=data, mode="overwrite")
        else:
            self.db.create_table(sch.META, data=data, exist_ok=True)

    def check_model(self, recorded: tuple[str, int]) -> None:
        """Refuse vector work when the stored vectors come from another model."""
        name, dimension = recorded
        embedder = self.embedder
        if name != embedder.name or dimension != embedder.dimension:
            raise KnowledgeError(
                f"the knowledge store at {self.location} holds vectors of {name} "
                f"({dimension} dimensions) but the configured model is {embedder.name} "
                f"({embedder.dimension} dimensions); vectors of two models cannot be compared",
                hint="run `orchestra kb reembed` to re-embed every entry with the configured "
                "model, or set knowledge.embedding back to the recorded model",
            )

    # -- the entries table --------------------------------------------------------------------

    def entries(self, *, for_vectors: bool) -> Any:
        """The entries table, created on first vector use; checks the embedding model.

        Without ``for_vectors`` a store that has no entries table yet gives None.
        """
        recorded = self.recorded_model()
        if sch.ENTRIES in self.names():
            if for_vectors:
                if recorded is None:
                    raise KnowledgeError(
                        f"the knowledge store at {self.location} has entries but no record "
                        "of the embedding model that made them",
                        hint="run `orchestra kb reembed` to re-embed them with the configured "
                        "model",
                    )
                self.check_model(recorded)
            return self.db.open_table(sch.ENTRIES)
        if not for_vectors:
            return None
        embedder = self.embedder
        table = self.db.create_table(
            sch.ENTRIES, schema=sch.entries_schema(embedder.dimension), exist_ok=True
        )
        ensure_fts(table)
        self.write_meta(embedder.name, embedder.dimension)
        return table

    def reader(self, *, for_vectors: bool) -> tuple[Any, int] | None:
        """The entries table for reading and its version, cached for ``READ_CACHE_S``.

        Opening the table and re-reading the model record costs milliseconds per query;
        a reader may see another process's writes up to that long late (this process's
        own writes at once: they call :meth:`invalidate`). The table is one version for as
        long as it is cached (LanceDB does not refresh an opened table), so row addresses
        found in it stay valid for the query. Writes never use this cache: they always
        re-check the recorded model, so vectors are never mixed.
        """
        now = time.monotonic()
        cached = self._read_cache
        if cached is not None and now - cached[0] < READ_CACHE_S:
            _, table, recorded, version = cached
            if for_vectors and recorded is not None:
                self.check_model(recorded)
            return table, version
        table = self.entries(for_vectors=for_vectors)
        if table is None:
            self._read_cache = None
            return None
        version = int(table.version)
        self._read_cache = (now, table, self.recorded_model(), version)
        return table, version

    def replace_entries(self, data: pa.Table) -> None:
        """Rewrite the entries table as one new version, with the configured model's record."""
        embedder = self.embedder
        new = self.db.create_table(sch.ENTRIES, data=data, mode="overwrite")
        ensure_fts(new)
        self.write_meta(embedder.name, embedder.dimension)


def ensure_fts(table: Any) -> None:
    """Build the BM25 index over ``search_text`` unless the table has one."""
    from lancedb.index import FTS

    if not any(ix.index_type == "FTS" for ix in table.list_indices()):
        table.create_index("search_text", config=FTS())
