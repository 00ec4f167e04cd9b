"""The knowledge store: entries in LanceDB, searched by vector, BM25 or both."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from orchestra.config.knowledge import KnowledgeSection
from orchestra.config.paths import orchestra_home
from orchestra.errors import KnowledgeError
from orchestra.knowledge import _schema as sch
from orchestra.knowledge.embeddings import Embedder, Vectors, embedder_from_config
from orchestra.knowledge.fusion import reciprocal_rank_fusion
from orchestra.knowledge.models import (
    KINDS,
    SEARCH_MODES,
    Entry,
    EntryId,
    Hit,
    PruneResult,
    SearchMode,
    Source,
    StoreStats,
)
from orchestra.knowledge.secrets import scrub

MAX_TEXT_CHARS = 100_000
_NAME = re.compile(r"^[^\x00-\x1f\x7f\s][^\x00-\x1f\x7f]{0,199}$")
"""Project, team and tag names: any printable text (folder names vary); values are always
quoted in queries, so quotes are harmless."""
_DedupeKey = tuple[str, str, str, str]
"""(project, kind, content hash, source file): the same text from the same place is one entry."""
_CANDIDATES = 50
_READ_CACHE_S = 1.0
VECTOR_INDEX_MIN_ROWS = 50_000
"""Below this many entries an exact vector scan is fast enough (and exact)."""
"""Each retriever contributes at least this many candidates to hybrid fusion."""


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


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


def default_location(config: KnowledgeSection | None = None) -> str:
    """``knowledge.path`` or ``$ORCHESTRA_HOME/knowledge``."""
    if config is not None and config.path:
        return config.path
    return str(orchestra_home() / "knowledge")


def _is_local(location: str) -> bool:
    return "://" not in location or location.startswith("file://")


def _check_name(what: str, value: str) -> None:
    if not _NAME.match(value):
        raise KnowledgeError(
            f"invalid {what} name {value!r}",
            hint=f"use 1-200 printable characters, not starting with a space, for the {what}",
        )


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise KnowledgeError(f"unknown kind {kind!r}", hint=f"use one of: {', '.join(KINDS)}")


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
        self._db = db
        self.location = location
        self.config = config
        self._embedder = embedder
        self._clock = clock
        self._id_factory = id_factory
        self._read_cache: tuple[float, Any, tuple[str, int] | None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

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
        if self._embedder is None:
            self._embedder = embedder_from_config(self.config.embedding)
        return self._embedder

    def _tables(self) -> set[str]:
        return set(self._db.list_tables().tables)

    def _meta(self) -> dict[str, str]:
        if sch.META not in self._tables():
            return {}
        rows = self._db.open_table(sch.META).to_arrow().to_pylist()
        return {r["key"]: r["value"] for r in rows}

    def recorded_model(self) -> tuple[str, int] | None:
        """``(model name, dimension)`` of the vectors stored, or None for an empty store."""
        meta = self._meta()
        if "embedding_model" not in meta:
            return None
        return meta["embedding_model"], int(meta["dimension"])

    def _write_meta(self, model: str, dimension: int) -> None:
        self._read_cache = None
        data = pa.Table.from_pylist(
            [
                {"key": "embedding_model", "value": model},
                {"key": "dimension", "value": str(dimension)},
                {"key": "schema_version", "value": "1"},
            ],
            schema=sch.META_SCHEMA,
        )
        if sch.META in self._tables():
            # One new table version: readers never see the record half-written.
            self._db.create_table(sch.META, data=data, mode="overwrite")
        else:
            self._db.create_table(sch.META, data=data, exist_ok=True)

    def _entries(self, *, for_vectors: bool) -> Any:
        """The entries table, created on first use; checks the embedding model."""
        recorded = self.recorded_model()
        if sch.ENTRIES in self._tables():
            if for_vectors:
                if recorded is None:
                    raise KnowledgeError(
                        f"the knowledge store at {self.location} has entries but no record "
                        "of the embedding model that made them",
                        hint="run `orchestra kb reembed` to re-embed them with the configured "
                        "model",
                    )
                self._check_model(recorded)
            return self._db.open_table(sch.ENTRIES)
        if not for_vectors:
            return None
        embedder = self.embedder
        table = self._db.create_table(
            sch.ENTRIES, schema=sch.entries_schema(embedder.dimension), exist_ok=True
        )
        self._ensure_fts(table)
        self._write_meta(embedder.name, embedder.dimension)
        return table

    def _reader(self, *, for_vectors: bool) -> Any:
        """The entries table for reading, cached for ``_READ_CACHE_S``.

        Opening the table and re-reading the model record costs milliseconds per query;
        a reader may see another process's writes up to that long late. Writes never use
        this cache: they always re-check the recorded model, so vectors are never mixed.
        """
        now = time.monotonic()
        cached = self._read_cache
        if cached is not None and now - cached[0] < _READ_CACHE_S:
            _, table, recorded = cached
            if for_vectors and recorded is not None:
                self._check_model(recorded)
            if table is not None or not for_vectors:
                return table
        table = self._entries(for_vectors=for_vectors)
        self._read_cache = (now, table, self.recorded_model()) if table is not None else None
        return table

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kb-fts")
            return self._executor

    def close(self) -> None:
        """Release the worker thread used by hybrid search (the store stays usable)."""
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def _check_model(self, recorded: tuple[str, int]) -> None:
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

    @staticmethod
    def _ensure_fts(table: Any) -> None:
        from lancedb.index import FTS

        if not any(ix.index_type == "FTS" for ix in table.list_indices()):
            table.create_index("search_text", config=FTS())

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
        if not items:
            return []
        if vectors is not None and vectors.shape != (len(items), self.embedder.dimension):
            raise KnowledgeError(
                f"vectors have shape {vectors.shape}, expected "
                f"({len(items)}, {self.embedder.dimension})",
                hint="pass one vector per item from the store's embedding model",
            )
        prepared: list[tuple[NewEntry, str, tuple[str, ...]]] = []
        for item in items:
            self._validate(item)
            scrubbed = scrub(item.text, self.config.secrets)
            title = scrub(item.title, self.config.secrets)
            digest = hashlib.sha256(scrubbed.text.encode("utf-8")).hexdigest()
            clean = dataclasses.replace(item, text=scrubbed.text, title=title.text)
            kinds = tuple(dict.fromkeys((*scrubbed.kinds, *title.kinds)))
            prepared.append((clean, digest, kinds))
        table = self._entries(for_vectors=True)
        existing = self._existing_hashes(table, [p[1] for p in prepared])
        ids: list[EntryId] = []
        new_rows: list[dict[str, Any]] = []
        to_embed: list[str] = []
        batch_seen: dict[_DedupeKey, EntryId] = {}
        now = self._clock()
        given: list[Any] = []
        for position, (entry, digest, kinds) in enumerate(prepared):
            key = (entry.project, entry.kind, digest, entry.source.file or "")
            if key in existing:
                ids.append(existing[key])
                continue
            if key in batch_seen:
                ids.append(batch_seen[key])
                continue
            entry_id = EntryId(self._id_factory())
            batch_seen[key] = entry_id
            ids.append(entry_id)
            new_rows.append(self._row(entry_id, entry, digest, kinds, now))
            to_embed.append(sch.embedding_text(entry.title, entry.text))
            given.append(vectors[position] if vectors is not None and not kinds else None)
        if new_rows:
            missing = [i for i, v in enumerate(given) if v is None]
            if missing:
                computed = self.embedder.embed([to_embed[i] for i in missing])
                for i, vector in zip(missing, computed, strict=True):
                    given[i] = vector
            for row, vector in zip(new_rows, given, strict=True):
                row["vector"] = vector.tolist()
            table.add(pa.Table.from_pylist(new_rows, schema=table.schema))
            self._read_cache = None
        return ids

    @staticmethod
    def _validate(item: NewEntry) -> None:
        _check_kind(item.kind)
        _check_name("project", item.project)
        if item.team is not None:
            _check_name("team", item.team)
        if not item.text.strip():
            raise KnowledgeError("cannot store an empty entry", hint="pass some text")
        if len(item.text) > MAX_TEXT_CHARS:
            raise KnowledgeError(
                f"entry is {len(item.text)} characters; the limit is {MAX_TEXT_CHARS}",
                hint="split the text into smaller entries (ingest does this for files)",
            )
        for tag in item.tags:
            _check_name("tag", tag)

    def _row(
        self, entry_id: EntryId, e: NewEntry, digest: str, kinds: tuple[str, ...], now: datetime
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

    @staticmethod
    def _existing_hashes(table: Any, hashes: list[str]) -> dict[_DedupeKey, EntryId]:
        found: dict[_DedupeKey, EntryId] = {}
        digests = sorted(set(hashes))
        for start in range(0, len(digests), 200):
            chunk = ", ".join(sch.sql_string(d) for d in digests[start : start + 200])
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

    # -- reading ---------------------------------------------------------------------------

    @staticmethod
    def _where(
        project: str | None,
        kind: str | None,
        team: str | None = None,
        tags: Sequence[str] = (),
    ) -> str | None:
        clauses = []
        if project is not None:
            clauses.append(f"project = {sch.sql_string(project)}")
        if kind is not None:
            _check_kind(kind)
            clauses.append(f"kind = {sch.sql_string(kind)}")
        if team is not None:
            clauses.append(f"team = {sch.sql_string(team)}")
        if tags:
            listed = ", ".join(sch.sql_string(t) for t in tags)
            clauses.append(f"array_has_any(tags, [{listed}])")
        return " AND ".join(clauses) or None

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
        """The ``k`` best entries for ``query``; filters run inside the LanceDB query.

        ``hybrid`` fuses the vector and BM25 rankings by reciprocal rank; ``vector`` scores
        are cosine similarity; ``text`` scores are BM25.
        """
        if mode not in SEARCH_MODES:
            raise KnowledgeError(f"unknown search mode {mode!r}", hint="use hybrid, vector or text")
        if not 1 <= k <= 1000:
            raise KnowledgeError(f"k must be between 1 and 1000, got {k}", hint="pass --k 10")
        if not query.strip():
            raise KnowledgeError("empty search query", hint="pass some words to search for")
        where = self._where(project, kind, team, tags)
        table = self._reader(for_vectors=mode != "text")
        if table is None:
            return []
        columns = [*sch.ENTRY_COLUMNS]
        n = max(k * 4, _CANDIDATES) if mode == "hybrid" else k

        def text_search() -> list[dict[str, Any]]:
            q = table.search(query, query_type="fts", fts_columns="search_text")
            if where:
                q = q.where(where, prefilter=True)
            rows: list[dict[str, Any]] = q.select([*columns, "_score"]).limit(n).to_list()
            return rows

        vector_rows: list[dict[str, Any]] = []
        text_rows: list[dict[str, Any]] = []
        # In hybrid mode BM25 runs in a worker while this thread embeds the query and
        # searches vectors: the latency is the longer of the two, not their sum.
        pending = self._pool().submit(text_search) if mode == "hybrid" else None
        if mode in ("hybrid", "vector"):
            vector = self.embedder.embed([query])[0]
            q = table.search(vector.tolist(), vector_column_name="vector").distance_type("cosine")
            if where:
                q = q.where(where, prefilter=True)
            vector_rows = q.select([*columns, "_distance"]).limit(n).to_list()
        if pending is not None:
            text_rows = pending.result()
        elif mode == "text":
            text_rows = text_search()
        if mode == "vector":
            return [Hit(sch.entry_from_row(r), 1.0 - float(r["_distance"])) for r in vector_rows]
        if mode == "text":
            return [Hit(sch.entry_from_row(r), float(r["_score"])) for r in text_rows]
        by_id = {r["id"]: r for r in [*text_rows, *vector_rows]}
        fused = reciprocal_rank_fusion(
            [[r["id"] for r in vector_rows], [r["id"] for r in text_rows]]
        )
        return [Hit(sch.entry_from_row(by_id[i]), score) for i, score in fused[:k]]

    async def asearch(
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
        """:meth:`search` in a worker thread, for async callers (embedding is CPU-bound)."""
        return await asyncio.to_thread(
            self.search, query, project, kind, k, mode, team=team, tags=tags
        )

    async def aadd(
        self,
        text: str,
        kind: str,
        project: str,
        team: str | None = None,
        source: Source | None = None,
        tags: Sequence[str] = (),
        title: str = "",
    ) -> EntryId:
        """:meth:`add` in a worker thread, for async callers."""
        return await asyncio.to_thread(self.add, text, kind, project, team, source, tags, title)

    async def aadd_many(self, items: Sequence[NewEntry]) -> list[EntryId]:
        """:meth:`add_many` in a worker thread, for async callers."""
        return await asyncio.to_thread(self.add_many, items)

    def get(self, entry_id: str) -> Entry | None:
        """The entry with this id, or None."""
        table = self._entries(for_vectors=False)
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

    def recent(
        self, project: str, kinds: Sequence[str] = KINDS, limit: int = 10, team: str | None = None
    ) -> list[Entry]:
        """Newest entries of a project, by kind priority (the order of ``kinds``) then age."""
        table = self._entries(for_vectors=False)
        if table is None or not kinds:
            return []
        for kind in kinds:
            _check_kind(kind)
        listed = ", ".join(sch.sql_string(kd) for kd in kinds)
        where = f"project = {sch.sql_string(project)} AND kind IN ({listed})"
        if team is not None:
            where += f" AND team = {sch.sql_string(team)}"
        rows = table.search().where(where).select(sch.ENTRY_COLUMNS).limit(5000).to_list()
        rank = {kd: i for i, kd in enumerate(kinds)}
        entries = [sch.entry_from_row(r) for r in rows]
        entries.sort(key=lambda e: (rank[e.kind], -e.updated_at.timestamp()))
        return entries[:limit]

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
        clauses = []
        for column, value in (
            ("source_file", file),
            ("source_run", run),
            ("source_agent", agent),
            ("source_session", session),
        ):
            if value is not None:
                clauses.append(f"{column} = {sch.sql_string(value)}")
        if not clauses:
            raise KnowledgeError(
                "delete by source needs a source",
                hint="pass at least one of --file, --run, --agent, --session",
            )
        if project is not None:
            clauses.append(f"project = {sch.sql_string(project)}")
        return self._delete(" AND ".join(clauses))

    def delete(self, entry_id: str) -> bool:
        """Delete one entry by id; True when it existed."""
        return self._delete(f"id = {sch.sql_string(entry_id)}") > 0

    def _delete(self, where: str) -> int:
        table = self._entries(for_vectors=False)
        if table is None:
            return 0
        count = int(table.count_rows(where))
        if count:
            table.delete(where)
            self._read_cache = None
        return count

    def prune(
        self,
        *,
        retention_days: dict[str, int] | None = None,
        project: str | None = None,
        now: datetime | None = None,
    ) -> PruneResult:
        """Delete entries older than their kind's retention (``knowledge.retention_days``)."""
        retention = self.config.retention_days if retention_days is None else retention_days
        now = now or self._clock()
        removed: dict[str, int] = {}
        for kind, days in sorted(retention.items()):
            _check_kind(kind)
            if days < 0:
                raise KnowledgeError(f"negative retention for {kind}", hint="use days >= 0")
            cutoff = (now - timedelta(days=days)).astimezone(UTC)
            where = (
                f"kind = {sch.sql_string(kind)} AND updated_at < "
                f"arrow_cast({sch.sql_string(cutoff.strftime('%Y-%m-%dT%H:%M:%S.%f'))}, "
                f"'Timestamp(Microsecond, Some(\"UTC\"))')"
            )
            if project is not None:
                where += f" AND project = {sch.sql_string(project)}"
            removed[kind] = self._delete(where)
        return PruneResult(removed)

    def stats(self) -> StoreStats:
        """Counts by kind and project, and the recorded embedding model."""
        table = self._entries(for_vectors=False)
        recorded = self.recorded_model()
        model, dimension = recorded if recorded else (self.embedder.name, 0)
        if table is None:
            return StoreStats(0, {}, {}, model, dimension, self.location, 0)
        data = table.to_arrow().select(["kind", "project"]).to_pydict()
        files = 0
        if sch.FILES in self._tables():
            files = int(self._db.open_table(sch.FILES).count_rows())
        return StoreStats(
            total=len(data["kind"]),
            by_kind=dict(Counter(data["kind"])),
            by_project=dict(Counter(data["project"])),
            embedding_model=model,
            dimension=dimension,
            location=self.location,
            files_tracked=files,
        )

    def optimize(self, *, vector_index: bool = True) -> None:
        """Fold new rows into the indexes and compact small files (after bulk writes).

        Builds the vector index once the store reaches ``VECTOR_INDEX_MIN_ROWS`` entries.
        """
        table = self._entries(for_vectors=False)
        if table is not None:
            table.optimize()
            self._read_cache = None
            has_vector_index = any("vector" in ix.columns for ix in table.list_indices())
            if vector_index and not has_vector_index:
                self.create_vector_index(min_rows=VECTOR_INDEX_MIN_ROWS)

    def create_vector_index(self, *, min_rows: int = VECTOR_INDEX_MIN_ROWS) -> bool:
        """Build an approximate (IVF-HNSW, scalar-quantised) vector index for large stores.

        Below ``min_rows`` an exact scan is fast enough and exact, so nothing is built;
        returns whether an index was built. Filters still run inside the query.
        """
        table = self._entries(for_vectors=False)
        if table is None:
            return False
        rows = int(table.count_rows())
        if rows < min_rows:
            return False
        from lancedb.index import IvfHnswSq

        table.create_index(
            "vector",
            config=IvfHnswSq(distance_type="cosine", num_partitions=max(1, rows // 20_000)),
            replace=True,
        )
        self._read_cache = None
        return True

    def reembed(self, *, progress: Callable[[int, int], None] | None = None) -> int:
        """Re-compute every vector with the configured model; returns entries converted.

        The table is rewritten as one new LanceDB version, so readers see either all old
        or all new vectors, never a mix.
        """
        if sch.ENTRIES not in self._tables():
            return 0
        table = self._db.open_table(sch.ENTRIES)
        data = table.to_arrow().drop_columns(["vector"])
        rows = data.to_pylist()
        embedder = self.embedder
        texts = [sch.embedding_text(r["title"] or "", r["text"]) for r in rows]
        vectors: list[list[float]] = []
        step = 256
        for start in range(0, len(texts), step):
            vectors.extend(v.tolist() for v in embedder.embed(texts[start : start + step]))
            if progress:
                progress(min(start + step, len(texts)), len(texts))
        for row, vector in zip(rows, vectors, strict=True):
            row["vector"] = vector
        schema = sch.entries_schema(embedder.dimension)
        new = self._db.create_table(
            sch.ENTRIES, data=pa.Table.from_pylist(rows, schema=schema), mode="overwrite"
        )
        self._ensure_fts(new)
        self._write_meta(embedder.name, embedder.dimension)
        return len(rows)

    # -- ingestion bookkeeping (used by orchestra.knowledge.ingest) --------------------------

    def file_hashes(self, project: str) -> dict[str, str]:
        """``{path: sha256}`` of the files ingested for a project."""
        if sch.FILES not in self._tables():
            return {}
        rows = (
            self._db.open_table(sch.FILES)
            .search()
            .where(f"project = {sch.sql_string(project)}")
            .select(["path", "file_hash"])
            .limit(1_000_000)
            .to_list()
        )
        return {r["path"]: r["file_hash"] for r in rows}

    def record_files(self, project: str, files: Iterable[tuple[str, str, int]]) -> None:
        """Remember ``(path, sha256, chunks)`` of ingested files (replacing older records)."""
        rows: list[dict[str, Any]] = [
            {
                "project": project,
                "path": p,
                "file_hash": h,
                "chunks": n,
                "ingested_at": self._clock(),
            }
            for p, h, n in files
        ]
        if not rows:
            return
        table = self._db.create_table(sch.FILES, schema=sch.FILES_SCHEMA, exist_ok=True)
        self.forget_files(project, [str(r["path"]) for r in rows])
        table.add(pa.Table.from_pylist(rows, schema=sch.FILES_SCHEMA))

    def forget_files(self, project: str, paths: Sequence[str]) -> None:
        """Drop the ingestion records of these files (not their entries)."""
        if not paths or sch.FILES not in self._tables():
            return
        table = self._db.open_table(sch.FILES)
        for start in range(0, len(paths), 200):
            listed = ", ".join(sch.sql_string(p) for p in paths[start : start + 200])
            table.delete(f"project = {sch.sql_string(project)} AND path IN ({listed})")

    def delete_files_entries(self, project: str, paths: Sequence[str]) -> int:
        """Delete the entries ingested from these files of a project."""
        total = 0
        for start in range(0, len(paths), 200):
            listed = ", ".join(sch.sql_string(p) for p in paths[start : start + 200])
            total += self._delete(
                f"project = {sch.sql_string(project)} AND origin = 'ingest' "
                f"AND source_file IN ({listed})"
            )
        return total
