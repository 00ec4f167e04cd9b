"""Exact vector search in memory, for stores below the size where the vector index pays.

LanceDB's exact scan decodes every vector of the table from its files for each query
(about 18 ms for 10,000 entries on a 2-core machine). Here the vectors are kept in one
float32 numpy matrix, already scaled to unit length, next to their row addresses and the
filter columns (``project``, ``kind``, ``team``) as integer codes; a query is one
matrix-vector product, a mask and a partial sort (about a millisecond for 10,000 x 384
on a 2-core machine; the product is bound by reading the matrix from memory).

The copy follows the table version the query reads (see ``EntryTables.reader``): when the
version changes (this process's writes at once, another process's within the reader's
cache time), the row addresses are scanned, rows that disappeared are masked out and new
rows are fetched by address. Row addresses name immutable rows (LanceDB never rewrites a
row in place: updates, compaction and overwrites give new addresses), so a row kept from
an older version still holds the same vector.

Memory: rows x dimension x 4 bytes, plus 20 bytes a row (address and codes): 50,000
entries of 384 dimensions take 77 MB. ``knowledge.memory_scan_max_rows`` bounds it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

MEMORY_SCAN_MAX_ROWS = 50_000
"""Default largest store searched in memory (``knowledge.memory_scan_max_rows``)."""

FILTER_COLUMNS = ("project", "kind", "team")
"""The columns an in-memory search can filter on (equality; null never matches)."""

_log = logging.getLogger(__name__)

_NO_VALUE = -1
"""The code of a null, and of a filter value no row has."""

_Floats = npt.NDArray[np.float32]
_Codes = npt.NDArray[np.int32]
_RowIds = npt.NDArray[np.uint64]


@dataclass(frozen=True)
class _Column:
    """One filter column as integer codes into ``values``."""

    codes: _Codes
    values: tuple[str, ...]

    def code(self, value: str) -> int:
        try:
            return self.values.index(value)
        except ValueError:
            return _NO_VALUE


@dataclass(frozen=True)
class Snapshot:
    """The vectors of one table version; never changed once built (queries share it)."""

    version: int
    row_ids: _RowIds
    unit: _Floats
    """One row per entry, scaled to unit length (a zero or null vector stays zero)."""
    alive: npt.NDArray[np.bool_]
    """False for rows deleted since they were loaded (dropped at the next rebuild)."""
    columns: dict[str, _Column]

    def search(
        self, vector: Sequence[float] | _Floats, n: int, filters: dict[str, str]
    ) -> tuple[list[tuple[int, float]], str | None]:
        """The ``n`` nearest rows by cosine similarity, as ``(row address, similarity)``
        best first (ties by row order), and the kind of the best one."""
        query = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(query))
        if norm > 0:
            query = query / norm
        mask = self.alive
        for name, value in filters.items():
            column = self.columns[name]
            mask = mask & (column.codes == column.code(value))
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return [], None
        # einsum, not ``@``: BLAS's matrix-vector product starts threads, which on a busy
        # 2-core machine made it several times slower (measured); the scan is bound by
        # reading the matrix either way. A narrow filter reads only its own rows.
        if rows.size * 2 < len(mask):
            scores = np.einsum("ij,j->i", self.unit[rows], query)
        else:
            scores = np.einsum("ij,j->i", self.unit, query)[rows]
        take = min(n, rows.size)
        top = np.argpartition(-scores, take - 1)[:take] if take < rows.size else np.arange(take)
        top = top[np.lexsort((top, -scores[top]))]
        kinds = self.columns["kind"]
        best_kind = kinds.values[kinds.codes[rows[top[0]]]]
        hits = [(int(self.row_ids[rows[i]]), float(scores[i])) for i in top]
        return hits, best_kind


class VectorCache:
    """The in-memory vectors of one store's entries table, synced to the version read.

    The first vector query of a process starts loading the copy in a background thread and
    is answered by LanceDB, as are the queries until the copy is ready: a one-shot process
    (``orchestra kb search``) never pays for loading vectors it searches once. Later
    versions are synced on the query's own thread (a scan of row addresses and a fetch of
    the new rows).
    """

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._snapshot: Snapshot | None = None
        self._too_large: int | None = None
        """The version found to hold more than ``max_rows`` rows (not loaded)."""
        self._failed: int | None = None
        """The version a background load failed on (not retried for that version)."""
        self._loading: threading.Thread | None = None
        self._generation = 0
        self._lock = threading.Lock()

    def snapshot(
        self, table: Any, version: int, loop: asyncio.AbstractEventLoop
    ) -> Snapshot | None:
        """The vectors of ``table`` (an async LanceDB table at ``version``), or None when
        they are not loaded yet or the table has more than ``max_rows`` rows. Coroutines
        run on ``loop``."""
        current = self._snapshot
        if current is not None and current.version == version:
            return current
        if self.max_rows <= 0 or version in (self._too_large, self._failed):
            return None
        if current is None:
            self._start_loading(table, version, loop)
            return None
        with self._lock:
            current = self._snapshot
            if current is None or current.version == version or self._too_large == version:
                return current
            read = _read_changes(table, current, self.max_rows)
            changes = asyncio.run_coroutine_threadsafe(read, loop).result()
            if changes is None:
                self._too_large = version
                self._snapshot = None  # a store that grew past the bound frees its memory
                return None
            self._snapshot = _merge(version, current, *changes)
            return self._snapshot

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a background load; True when loaded."""
        loading = self._loading
        if loading is not None:
            loading.join(timeout)
        return self._snapshot is not None

    def clear(self) -> None:
        """Forget the loaded vectors (the next query loads them again)."""
        with self._lock:
            self._generation += 1
            self._snapshot = None
            self._too_large = None
            self._failed = None

    def _start_loading(self, table: Any, version: int, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if self._snapshot is not None or (self._loading and self._loading.is_alive()):
                return
            self._loading = threading.Thread(
                target=self._load,
                args=(table, version, loop, self._generation),
                name="orchestra-kb-vectors",
                daemon=True,
            )
            self._loading.start()

    def _load(
        self, table: Any, version: int, loop: asyncio.AbstractEventLoop, generation: int
    ) -> None:
        try:
            read = _read_all(table, self.max_rows)
            data = asyncio.run_coroutine_threadsafe(read, loop).result()
            fresh = None if data is None else _from_arrow(version, data)
        except Exception:  # searches stay on LanceDB's exact scan, which is just as exact
            _log.warning("could not load the knowledge vectors into memory", exc_info=True)
            self._failed = version
            return
        with self._lock:
            if generation != self._generation:
                return
            if fresh is None:
                self._too_large = version
            elif self._snapshot is None:
                self._snapshot = fresh


_LOADED = ["vector", *FILTER_COLUMNS]


async def _read_all(table: Any, max_rows: int) -> pa.Table | None:
    """Every row's address, vector and filter columns; None above ``max_rows`` rows."""
    if int(await table.count_rows()) > max_rows:
        return None
    data: pa.Table = await table.query().select(_LOADED).with_row_id().to_arrow()
    return data


async def _read_changes(
    table: Any, old: Snapshot, max_rows: int
) -> tuple[npt.NDArray[np.bool_], pa.Table | None] | None:
    """Which of ``old``'s rows remain, and the rows it lacks; None above ``max_rows``."""
    if int(await table.count_rows()) > max_rows:
        return None
    scanned = await table.query().select([]).with_row_id().to_arrow()
    present = scanned["_rowid"].to_numpy().astype(np.uint64)
    keep = np.isin(old.row_ids, present) & old.alive
    new_ids = np.setdiff1d(present, old.row_ids[keep], assume_unique=True)
    if not len(new_ids):
        return keep, None
    take = table.take_row_ids([int(r) for r in new_ids]).select(_LOADED).with_row_id()
    fetched: pa.Table = await take.to_arrow()
    return keep, fetched


def _from_arrow(version: int, data: pa.Table) -> Snapshot:
    row_ids = data["_rowid"].to_numpy().astype(np.uint64)
    unit, valid = _unit_rows(data["vector"])
    columns = {}
    for name in FILTER_COLUMNS:
        values = data[name].to_pylist()
        names = tuple(sorted({v for v in values if v is not None}))
        index = {v: i for i, v in enumerate(names)}
        codes = np.fromiter(
            (_NO_VALUE if v is None else index[v] for v in values), np.int32, len(values)
        )
        columns[name] = _Column(codes, names)
    return Snapshot(version, row_ids, unit, valid, columns)


def _merge(
    version: int, old: Snapshot, keep: npt.NDArray[np.bool_], new: pa.Table | None
) -> Snapshot:
    """``old`` with ``keep`` applied and ``new``'s rows appended.

    Deleted rows are only masked while they are a quarter of the matrix or less; beyond
    that (and whenever rows are appended) the matrix is rebuilt from the live rows.
    """
    if new is None or new.num_rows == 0:
        if np.count_nonzero(~keep) * 4 <= len(keep):
            return Snapshot(version, old.row_ids, old.unit, keep, old.columns)
        return _compact(version, old, keep)
    added = _from_arrow(version, new)
    columns = {}
    for name in FILTER_COLUMNS:
        mine, theirs = old.columns[name], added.columns[name]
        values = tuple(sorted(set(mine.values) | set(theirs.values)))
        columns[name] = _Column(
            np.concatenate([_recode(mine, values)[keep], _recode(theirs, values)]), values
        )
    return Snapshot(
        version,
        np.concatenate([old.row_ids[keep], added.row_ids]),
        np.concatenate([old.unit[keep], added.unit]),
        np.concatenate([np.ones(int(np.count_nonzero(keep)), np.bool_), added.alive]),
        columns,
    )


def _compact(version: int, old: Snapshot, keep: npt.NDArray[np.bool_]) -> Snapshot:
    columns = {n: _Column(c.codes[keep], c.values) for n, c in old.columns.items()}
    alive = np.ones(int(np.count_nonzero(keep)), np.bool_)
    return Snapshot(version, old.row_ids[keep], old.unit[keep], alive, columns)


def _recode(column: _Column, values: tuple[str, ...]) -> _Codes:
    """``column``'s codes in terms of ``values`` (a superset of its own)."""
    mapping = np.array([values.index(v) for v in column.values] + [_NO_VALUE], np.int32)
    return mapping[column.codes]  # _NO_VALUE (-1) picks the last entry, itself


def _unit_rows(vectors: pa.ChunkedArray) -> tuple[_Floats, npt.NDArray[np.bool_]]:
    """The vectors as float32 rows of unit length, and which rows have a vector."""
    array = vectors.combine_chunks()
    rows = len(array)
    dimension = array.type.list_size
    flat = array.values.to_numpy(zero_copy_only=False)[
        array.offset * dimension : (array.offset + rows) * dimension
    ]
    matrix = np.array(flat, dtype=np.float32).reshape(rows, dimension)
    valid = ~np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_)
    matrix[~valid] = 0.0
    norms = np.linalg.norm(matrix, axis=1)
    np.divide(matrix, norms[:, None], out=matrix, where=norms[:, None] > 0)
    return matrix, valid
