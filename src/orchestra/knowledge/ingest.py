"""``orchestra kb ingest``: index a repository into the knowledge store, incrementally.

A file is re-chunked and re-embedded only when its sha256 changed since the last ingest;
entries of deleted files are removed. Binary and huge files are skipped and counted.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.errors import KnowledgeError
from orchestra.knowledge._schema import embedding_text
from orchestra.knowledge.chunking import chunk_file
from orchestra.knowledge.embeddings import Vectors
from orchestra.knowledge.files import list_files
from orchestra.knowledge.models import Source
from orchestra.knowledge.secrets import scrub
from orchestra.knowledge.store import KnowledgeStore, NewEntry

ProgressCallback = Callable[[int, int, str], None]
"""``(files done, files total, current path)``."""

_BATCH = 256
"""Chunks embedded and written together (one LanceDB commit per batch). Large batches
sort by length better inside the encoder, so less of the work is padding."""


@dataclass
class IngestReport:
    """What one ingest did."""

    project: str
    files_seen: int = 0
    files_indexed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_refused: int = 0
    """Chunks refused by the secret policy (e.g. containing a private key)."""
    skipped_binary: int = 0
    skipped_huge: int = 0
    skipped_unreadable: int = 0
    seconds: float = 0.0
    skipped_paths: list[str] = field(default_factory=list)

    @property
    def chunks_per_second(self) -> float:
        """Ingest rate of this run (0 when nothing was embedded)."""
        return self.chunks_added / self.seconds if self.seconds > 0 else 0.0


def _is_binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\0" in head:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def ingest_repository(
    store: KnowledgeStore,
    root: Path,
    *,
    project: str | None = None,
    team: str | None = None,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Index every non-ignored text file under ``root`` into ``project``.

    ``project`` defaults to the folder's name. Paths are stored relative to ``root``.
    """
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise KnowledgeError(f"{root} is not a folder", hint="pass the repository's root folder")
    project = project or root.name
    started = time.perf_counter()
    report = IngestReport(project=project)
    paths = list_files(root)
    report.files_seen = len(paths)
    known = store.file_hashes(project)
    batch = _Batch(store, project, report)
    try:
        for done, rel in enumerate(paths, start=1):
            if progress:
                progress(done - 1, len(paths), rel)
            data = _read_text(root / rel, rel, store.config.ingest.max_file_bytes, report)
            if data is None:
                continue
            digest = hashlib.sha256(data).hexdigest()
            if known.get(rel) == digest:
                report.files_unchanged += 1
                continue
            if rel in known:
                report.chunks_removed += store.delete_files_entries(project, [rel])
            entries = _entries(store, rel, data.decode("utf-8"), project, team, report)
            batch.add(entries, (rel, digest, len(entries)))
            report.files_indexed += 1
        batch.flush()
    finally:
        batch.close()
    current = set(paths)
    gone = sorted(p for p in known if p not in current)
    if gone:
        report.chunks_removed += store.delete_files_entries(project, gone)
        store.forget_files(project, gone)
        report.files_deleted = len(gone)
    if report.chunks_added or report.chunks_removed:
        store.optimize()
    if progress:
        progress(len(paths), len(paths), "")
    report.seconds = time.perf_counter() - started
    return report


def _read_text(full: Path, rel: str, max_bytes: int, report: IngestReport) -> bytes | None:
    """The file's bytes, or ``None`` (counted in ``report``) when it is huge, unreadable or
    binary."""
    try:
        if full.stat().st_size > max_bytes:
            report.skipped_huge += 1
            report.skipped_paths.append(rel)
            return None
        data = full.read_bytes()
    except OSError:
        report.skipped_unreadable += 1
        report.skipped_paths.append(rel)
        return None
    if _is_binary(data):
        report.skipped_binary += 1
        report.skipped_paths.append(rel)
        return None
    return data


def _entries(
    store: KnowledgeStore,
    rel: str,
    text: str,
    project: str,
    team: str | None,
    report: IngestReport,
) -> list[NewEntry]:
    """The file's chunks as entries; chunks the secret policy refuses are counted, not kept."""
    entries: list[NewEntry] = []
    for chunk in chunk_file(rel, text, max_lines=store.config.ingest.max_chunk_lines):
        try:
            scrub(chunk.text, store.config.secrets)
        except KnowledgeError:
            report.chunks_refused += 1
            continue
        entries.append(
            NewEntry(
                text=chunk.stored_text,
                kind=chunk.kind,
                project=project,
                team=team,
                source=Source(
                    file=rel,
                    start_line=chunk.start_line,
                    end_line=chunk.end_line,
                    origin="ingest",
                ),
                title=chunk.title,
            )
        )
    return entries


class _Batch:
    """Entries and file hashes written together, one LanceDB commit per ``_BATCH`` chunks.

    Embedding overlaps the rest: a full batch is embedded on a worker thread while this
    thread reads and chunks the next files and writes the previous batch (its vectors are
    handed to ``add_many``, which re-embeds only entries a redaction changed). With one
    ONNX Runtime thread per call, the second core does the reading, chunking and LanceDB
    writes.
    """

    def __init__(self, store: KnowledgeStore, project: str, report: IngestReport) -> None:
        self._store = store
        self._project = project
        self._report = report
        self._entries: list[NewEntry] = []
        self._files: list[tuple[str, str, int]] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orchestra-embed")
        self._pending: _Pending | None = None

    def add(self, entries: list[NewEntry], file: tuple[str, str, int]) -> None:
        self._entries.extend(entries)
        self._files.append(file)
        if len(self._entries) >= _BATCH:
            self._submit()

    def _submit(self) -> None:
        """Start embedding the collected entries, then write the batch before them."""
        texts = [embedding_text(e.title, e.text) for e in self._entries]
        vectors = self._pool.submit(self._store.embedder.embed, texts) if texts else None
        started = _Pending(self._entries, self._files, vectors)
        self._entries, self._files = [], []
        self._write()
        self._pending = started

    def _write(self) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        if pending.vectors is not None:
            self._store.add_many(pending.entries, vectors=pending.vectors.result())
            self._report.chunks_added += len(pending.entries)
        if pending.files:
            self._store.record_files(self._project, pending.files)

    def flush(self) -> None:
        """Write everything collected and still being embedded."""
        if self._entries or self._files:
            self._submit()
        self._write()

    def close(self) -> None:
        """Stop the embedding thread (after :meth:`flush`, or on an error)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Pending:
    """A batch whose vectors are being computed."""

    entries: list[NewEntry]
    files: list[tuple[str, str, int]]
    vectors: Future[Vectors] | None
