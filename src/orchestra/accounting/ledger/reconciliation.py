"""Reconciliation at start-up: the journals of dead processes become ledger entries.

Every journal whose lock is free (its owner died) is read: each unfinished stream (an
``open`` line without ``done``) becomes an entry with outcome ``reconciled``, the usage seen
so far and its cost; each finished call journaled as a ``row`` line and not marked done is
committed exactly as journaled. Entries already in the database (a crash between a commit
and its ``done`` line) are skipped, so an entry is never lost and never stored twice.
Their reservations are settled in the same transaction, and the journal is deleted.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from orchestra.accounting.budgets import Reservation
from orchestra.accounting.ledger.entries import LedgerEntry, entry_from_values, reservation_from
from orchestra.accounting.ledger.journal import remove_if_unlocked
from orchestra.providers.usage import Usage
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayLedgerEntry

log = logging.getLogger("orchestra.accounting.ledger")

Commit = Callable[[list[tuple[LedgerEntry, Reservation | None]]], list[LedgerEntry]]
"""Stores entries (settling their reservations) and returns them as stored."""


@dataclass
class JournalContents:
    """What a journal file says is unfinished."""

    drafts: dict[str, tuple[LedgerEntry, Reservation | None]] = field(default_factory=dict)
    """Record id -> its entry (a stream's draft, or a finished call) and reservation."""
    finals: set[str] = field(default_factory=set)
    """Records journaled finished: committed as they are, not reconciled."""
    progress: dict[str, tuple[Usage, datetime | None]] = field(default_factory=dict)
    """A stream's last usage line: its usage so far and when it was seen."""


def read_journal(data: bytes) -> JournalContents:
    """The unfinished records of a journal's text; a line cut short by a crash is skipped."""
    out = JournalContents()
    drafts, finals, progress = out.drafts, out.finals, out.progress
    for line in data.splitlines():
        try:
            rec = json.loads(line)
            op = rec["op"]
            if op == "done" and "ids" in rec:  # one line for a committed batch
                for sid in rec["ids"]:
                    drafts.pop(sid, None)
                continue
            if op == "row":  # a finished call (its row)
                entry = entry_from_values(rec["row"])
                drafts[entry.id] = (entry, reservation_from(rec.get("r")))
                finals.add(entry.id)
                continue
            sid = rec["id"]
            if op == "open":
                drafts[sid] = (
                    LedgerEntry.from_json(rec["entry"]),
                    reservation_from(rec.get("reservation")),
                )
            elif op == "usage":
                progress[sid] = (
                    Usage(*rec["u"]),
                    datetime.fromisoformat(rec["t"]) if rec.get("t") else None,
                )
            elif op == "done":
                drafts.pop(sid, None)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by the crash
    return out


def reconcile_journals(
    folder: Path, db: Database, commit: Commit, *, own: Path | None = None
) -> list[LedgerEntry]:
    """Turn the unfinished records of dead processes' journals in ``folder`` into entries
    (``own``: this process's journal, left alone); returns the entries stored."""
    if not folder.is_dir():
        return []
    out: list[LedgerEntry] = []
    for leftover in folder.glob("*.jsonl.compact"):
        remove_if_unlocked(leftover)
    for path in sorted(folder.glob("*.jsonl")):
        if path == own:
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive and owns its streams
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                continue  # another process reconciled and removed it meanwhile
            out.extend(_reconcile_file(path, fd, db, commit))
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return out


def _reconcile_file(path: Path, fd: int, db: Database, commit: Commit) -> list[LedgerEntry]:
    chunks: list[bytes] = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    contents = read_journal(b"".join(chunks))
    drafts, finals = contents.drafts, contents.finals
    if not drafts:
        return []
    existing: set[str] = set()
    ids = list(drafts)
    with db.session() as session:
        for start in range(0, len(ids), 500):  # bounded IN lists
            existing.update(
                session.scalars(
                    select(GatewayLedgerEntry.id).where(
                        GatewayLedgerEntry.id.in_(ids[start : start + 500])
                    )
                )
            )
    # Committed, but the crash came before the "done" line: the row settled its
    # reservation in the same transaction, so there is nothing left to do for it.
    todo: list[tuple[LedgerEntry, Reservation | None]] = []
    for sid, (draft, reservation) in drafts.items():
        if sid in existing:
            continue
        if sid in finals:
            todo.append((draft, reservation))
            continue
        usage, last = contents.progress.get(sid, (draft.usage, None))
        entry = replace(
            draft,
            usage=usage,
            outcome="reconciled",
            ended_at=last or draft.started_at,
            cost_usd=None,
            error_type="gateway_crash",
        )
        todo.append((entry, reservation))
    stored = commit(todo)
    for entry in stored:
        if entry.id in finals:
            log.warning("committed journaled ledger entry %s from %s", entry.id, path.name)
        else:
            log.warning("reconciled unfinished stream %s from %s", entry.id, path.name)
    return stored
