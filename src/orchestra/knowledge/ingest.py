"""``orchestra kb ingest``: index a repository into the knowledge store, incrementally.

A file is re-chunked and re-embedded only when its sha256 changed since the last ingest;
entries of deleted files are removed. Binary and huge files are skipped and counted.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.errors import KnowledgeError
from orchestra.knowledge.chunking import chunk_file
from orchestra.knowledge.files import list_files
from orchestra.knowledge.models import Source
from orchestra.knowledge.secrets import scrub
from orchestra.knowledge.store import KnowledgeStore, NewEntry

ProgressCallback = Callable[[int, int, str], None]
"""``(files done, files total, current path)``."""

_BATCH = 64
"""Chunks embedded and written together (one LanceDB commit per batch)."""


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
    limits = store.config.ingest
    paths = list_files(root)
    report.files_seen = len(paths)
    known = store.file_hashes(project)
    pending: list[NewEntry] = []
    pending_files: list[tuple[str, str, int]] = []

    def flush() -> None:
        if pending:
            store.add_many(pending)
            report.chunks_added += len(pending)
            pending.clear()
        if pending_files:
            store.record_files(project, pending_files)
            pending_files.clear()

    for done, rel in enumerate(paths, start=1):
        if progress:
            progress(done - 1, len(paths), rel)
        full = root / rel
        try:
            size = full.stat().st_size
            if size > limits.max_file_bytes:
                report.skipped_huge += 1
                report.skipped_paths.append(rel)
                continue
            data = full.read_bytes()
        except OSError:
            report.skipped_unreadable += 1
            report.skipped_paths.append(rel)
            continue
        if _is_binary(data):
            report.skipped_binary += 1
            report.skipped_paths.append(rel)
            continue
        digest = hashlib.sha256(data).hexdigest()
        if known.get(rel) == digest:
            report.files_unchanged += 1
            continue
        if rel in known:
            report.chunks_removed += store.delete_files_entries(project, [rel])
        chunks = chunk_file(rel, data.decode("utf-8"), max_lines=limits.max_chunk_lines)
        kept = 0
        for chunk in chunks:
            try:
                scrub(chunk.text, store.config.secrets)
            except KnowledgeError:
                report.chunks_refused += 1
                continue
            kept += 1
            pending.append(
                NewEntry(
                    text=chunk.text,
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
        pending_files.append((rel, digest, kept))
        report.files_indexed += 1
        if len(pending) >= _BATCH:
            flush()
    flush()
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
