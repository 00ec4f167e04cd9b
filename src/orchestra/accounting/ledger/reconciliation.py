"""Reconciliation at start-up: the journals of dead processes become ledger entries.

Every journal whose lock is free (its owner died) is read: each unfinished stream (an
``open`` line without ``done``) becomes an entry with outcome ``reconciled``, the usage seen
so far and its cost; each finished call journaled as a ``row`` line and not marked done is
committed exactly as journaled. Entries already in the database (a crash between a commit
and its ``done`` line) are skipped, so an entry is never lost and never stored twice.
Their reservations are settled in the same transaction, and the journal is deleted.

**A poisoned journal never blocks start-up.** Entries are repaired on their way in
(:mod:`.bounds`); a record the database still refuses, or a line that is whole JSON but
not a record this version can read, is moved aside to ``quarantine/<journal>.jsonl`` beside
the journals (with the reason), reported to the caller, and the rest of the journal is
reconciled as usual.
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
from typing import Any

from sqlalchemy import select

from orchestra.accounting.budgets import Reservation
from orchestra.accounting.ledger.entries import LedgerEntry, entry_from_values, reservation_from
from orchestra.accounting.ledger.journal import remove_if_unlocked
from orchestra.providers.usage import Usage
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayLedgerEntry

log = logging.getLogger("orchestra.accounting.ledger")

Commit = Callable[
    [list[tuple[LedgerEntry, Reservation | None]]],
    list[tuple[LedgerEntry, Reservation | None, BaseException | None]],
]
"""Stores entries (settling their reservations); returns each as stored, with the error
that kept it out of the database (``None``: stored)."""


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A journal record moved aside because it could not be stored."""

    journal: str
    """The journal file's name."""
    record: str
    """The record's id, or ``line <n>`` for a line that could not be read."""
    reason: str
    file: Path
    """The quarantine file that now holds it."""


@dataclass
class Reconciled:
    """What reconciliation did."""

    stored: list[LedgerEntry] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)


@dataclass
class JournalContents:
    """What a journal file says is unfinished."""

    drafts: dict[str, tuple[LedgerEntry, Reservation | None]] = field(default_factory=dict)
    """Record id -> its entry (a stream's draft, or a finished call) and reservation."""
    finals: set[str] = field(default_factory=set)
    """Records journaled finished: committed as they are, not reconciled."""
    progress: dict[str, tuple[Usage, datetime | None]] = field(default_factory=dict)
    """A stream's last usage line: its usage so far and when it was seen."""
    unreadable: list[tuple[int, bytes, str]] = field(default_factory=list)
    """Lines that are whole JSON but not a record this version reads: (number, line, why)."""


def read_journal(data: bytes) -> JournalContents:
    """The unfinished records of a journal's text. A line that is not JSON (cut short by a
    crash) is skipped; one that is JSON but cannot be read is kept aside as unreadable."""
    out = JournalContents()
    drafts, finals, progress = out.drafts, out.finals, out.progress
    for number, line in enumerate(data.splitlines(), 1):
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut short by the crash
        try:
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
            if op == "open" and "row" in rec:  # a call before its upstream request
                drafts[sid] = (entry_from_values(rec["row"]), reservation_from(rec.get("r")))
            elif op == "open":
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
            else:
                raise ValueError(f"unknown journal op {op!r}")
        except Exception as exc:  # any shape a journal line should never have
            out.unreadable.append((number, line, f"{type(exc).__name__}: {exc}"))
    return out


def reconcile_journals(
    folder: Path, db: Database, commit: Commit, *, own: Path | None = None
) -> Reconciled:
    """Turn the unfinished records of dead processes' journals in ``folder`` into entries
    (``own``: this process's journal, left alone); what cannot be stored is quarantined."""
    out = Reconciled()
    if not folder.is_dir():
        return out
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
            _reconcile_file(path, fd, db, commit, out)
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return out


def _quarantine(path: Path, lines: list[dict[str, Any]]) -> Path:
    """Append ``lines`` to the quarantine file of journal ``path``; returns that file."""
    folder = path.parent / "quarantine"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    text = "".join(json.dumps(line, default=str) + "\n" for line in lines)  # ASCII escapes
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)  # it is the only copy once the journal is deleted
    finally:
        os.close(fd)
    return target


def _reconcile_file(path: Path, fd: int, db: Database, commit: Commit, out: Reconciled) -> None:
    chunks: list[bytes] = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    contents = read_journal(b"".join(chunks))
    if contents.unreadable:
        target = _quarantine(
            path,
            [
                {"journal": path.name, "line": n, "reason": why, "text": raw.decode("latin-1")}
                for n, raw, why in contents.unreadable
            ],
        )
        out.quarantined.extend(
            Quarantined(path.name, f"line {n}", why, target) for n, _, why in contents.unreadable
        )
    drafts, finals = contents.drafts, contents.finals
    if not drafts:
        return
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
    refused: list[dict[str, Any]] = []
    for entry, reservation, error in commit(todo):
        if error is None:
            out.stored.append(entry)
            if entry.id in finals:
                log.warning("committed journaled ledger entry %s from %s", entry.id, path.name)
            else:
                log.warning("reconciled unfinished stream %s from %s", entry.id, path.name)
            continue
        reason = f"{type(error).__name__}: {error}"[:1000]
        refused.append(
            {
                "journal": path.name,
                "id": entry.id,
                "reason": reason,
                "entry": entry.to_json(),
                "reservation": reservation.as_json() if reservation is not None else None,
            }
        )
    if refused:
        target = _quarantine(path, refused)
        out.quarantined.extend(
            Quarantined(path.name, str(r["id"]), str(r["reason"]), target) for r in refused
        )
