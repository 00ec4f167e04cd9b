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
    """The in-memory vectors of one store's entries table, synced to the version read."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._snapshot: Snapshot | None = None
        self._too_large: int | None = None
        """The version found to hold more than ``max_rows`` rows (not loaded)."""
        self._lock = threading.Lock()

    def snapshot(
        self, table: Any, version: int, loop: asyncio.AbstractEventLoop
    ) -> Snapshot | None:
        """The vectors of ``table`` (an async LanceDB table at ``version``), or None when
        the table has more than ``max_rows`` rows. Coroutines run on ``loop``."""
        current = self._snapshot
        if current is not None and current.version == version:
            return current
        if self._too_large == version or self.max_rows <= 0:
            return None
        with self._lock:
            current = self._snapshot
            if current is not None and current.version == version:
                return current
            if self._too_large == version:
                return None
            syncing = _sync(table, version, current, self.max_rows)
            fresh = asyncio.run_coroutine_threadsafe(syncing, loop).result()
            if fresh is None:
                self._too_large = version
                self._snapshot = None  # a store that grew past the bound frees its memory
            else:
                self._snapshot = fresh
            return fresh

    def clear(self) -> None:
        """Forget the loaded vectors (the next query loads them again)."""
        with self._lock:
            self._snapshot = None
            self._too_large = None


_LOADED = ["vector", *FILTER_COLUMNS]


async def _sync(table: Any, version: int, old: Snapshot | None, max_rows: int) -> Snapshot | None:
    """A snapshot of ``version``, reusing ``old``'s rows that still exist."""
    if int(await table.count_rows()) > max_rows:
        return None
    if old is None:
        loaded = await table.query().select(_LOADED).with_row_id().to_arrow()
        return _from_arrow(version, loaded)
    scanned = await table.query().select([]).with_row_id().to_arrow()
    present = scanned["_rowid"].to_numpy().astype(np.uint64)
    keep = np.isin(old.row_ids, present) & old.alive
    new_ids = np.setdiff1d(present, old.row_ids[keep], assume_unique=True)
    fetched = None
    if len(new_ids):
        take = table.take_row_ids([int(r) for r in new_ids]).select(_LOADED).with_row_id()
        fetched = await take.to_arrow()
    return _merge(version, old, keep, fetched)


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
