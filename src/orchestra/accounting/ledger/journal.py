"""The ledger's crash journal: one append-only file per process.

A call's record starts with an ``open`` line (its draft, before the upstream call) or a
``row`` line (a finished call whose commit comes later), may get ``usage`` lines (a
stream's progress), and ends with a ``done`` line once its entry is committed. Each line is
one ``write`` to a file opened with ``O_APPEND``, so it survives a SIGKILL of the process
(not a power cut: there is no fsync per line). The live process holds an exclusive
``flock`` on its journal; reconciliation (:mod:`.reconciliation`) takes the journals whose
lock is free (their owner died).

**Line forms.** ``{"op":"row","row":[...],"r":reservation}``: ``row`` holds the entry's
row values (:func:`~.entries.portable_row`); ``r`` is the reservation's journal form or
``null``. ``{"op":"open","id":...,"entry":{...},"reservation":...}`` starts a stream, and
``{"op":"open","id":...,"row":[...],"r":...}`` a call before its upstream request (its
draft's row values),
``{"op":"usage","id":...,"t":...,"u":[...]}`` records its progress, ``{"op":"done","id":...}``
or ``{"op":"done","ids":[...]}`` ends records.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from orchestra.accounting.budgets import Reservation
from orchestra.accounting.ledger.entries import FLAT, reservation_json

log = logging.getLogger("orchestra.accounting.ledger")

ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def open_line(entry_id: str, row_json: str, reservation: Reservation | None) -> bytes:
    """The ``open`` line of a call journaled before its upstream request: its draft's row
    values (:func:`~.entries.row_json`) and its reservation."""
    r = FLAT(reservation_json(reservation))
    return f'{{"op":"open","id":{FLAT(entry_id)},"row":{row_json},"r":{r}}}\n'.encode()


def row_line(row_json: str, reservation: Reservation | None) -> bytes:
    """The ``row`` journal line of a finished call whose :func:`~.entries.row_json` is
    ``row_json``."""
    return f'{{"op":"row","row":{row_json},"r":{FLAT(reservation_json(reservation))}}}\n'.encode()


class Journal:
    """This process's append-only journal (opened on first use, flock-held), compacted as it
    grows so its size is bounded by what is unfinished, not by how long the process runs.

    The journal remembers, for every record not yet ``done``, its ``open`` line and its last
    ``usage`` line. When the file has grown past ``max_bytes`` and is at least twice what is
    still unfinished, it is *compacted*: those lines are written to a new, flock-held file
    that atomically replaces the old one (``rename``). A SIGKILL at any moment leaves either
    the old file or the new one under the journal's name, both complete; a leftover
    ``.compact`` file (killed before the rename) is redundant and removed by reconciliation.
    Compacting costs a write of the unfinished lines, at most once per ``max_bytes / 2``
    written, so it is amortised to a constant per line.
    """

    def __init__(self, folder: Path, *, max_bytes: int = 8_000_000) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock = threading.Lock()
        self._live: dict[str, list[bytes]] = {}
        """Unfinished record id -> its open line and (if any) its latest usage line."""
        self._live_bytes = 0
        self._size = 0
        self.max_bytes = max_bytes
        """Compaction starts once the file is over this size (and mostly finished records)."""
        self.compactions = 0

    @property
    def open_streams(self) -> int:
        """How many journaled records are not finished yet."""
        return len(self._live)

    @property
    def size(self) -> int:
        """The journal file's current size in bytes."""
        return self._size

    def write(self, op: str, sid: str, record: dict[str, Any]) -> None:
        self.write_line(op, sid, (ENCODER.encode(record) + "\n").encode())

    def write_line(self, op: str, sid: str, line: bytes) -> None:
        """Append ``line`` (one JSON record and a newline) for record ``sid``: ``open``,
        ``row`` starts it, ``usage`` replaces its progress, ``done`` ends it."""
        with self._lock:
            if self._fd < 0:
                raise RuntimeError("the ledger journal is closed")
            # The bookkeeping and the write happen under one lock, so a compaction can
            # never drop the line of a record that is opening at the same moment.
            live = self._live.get(sid)
            if op == "row" or op == "open":
                if live is not None:  # the same call again (its open line, then its row)
                    self._live_bytes -= sum(len(x) for x in live)
                self._live[sid] = [line]
                self._live_bytes += len(line)
            elif op == "usage" and live is not None:
                if len(live) > 1:
                    self._live_bytes -= len(live.pop())
                live.append(line)
                self._live_bytes += len(line)
            elif op == "done" and live is not None:
                del self._live[sid]
                self._live_bytes -= sum(len(x) for x in live)
            self._append(line)

    def is_live(self, sid: str) -> bool:
        """Whether record ``sid`` is journaled and not done."""
        return sid in self._live

    def mark_done(self, ids: list[str]) -> None:
        """End the records ``ids`` with one line (a committed batch)."""
        if not ids:
            return
        line = (ENCODER.encode({"op": "done", "ids": ids}) + "\n").encode()
        with self._lock:
            if self._fd < 0:
                raise RuntimeError("the ledger journal is closed")
            pop, freed = self._live.pop, 0
            for sid in ids:
                live = pop(sid, None)
                if live is not None:
                    freed += len(live[0]) if len(live) == 1 else sum(len(x) for x in live)
            self._live_bytes -= freed
            self._append(line)

    def _append(self, line: bytes) -> None:
        """Write ``line`` and compact when due (with the lock held)."""
        _write_all(self._fd, line)
        self._size += len(line)
        if self._size > self.max_bytes and self._size >= 2 * self._live_bytes:
            try:
                self._compact()
            except OSError as exc:
                # The line is written; the journal only stays larger until next time.
                log.warning("ledger journal not compacted: %s", exc)

    def _compact(self) -> None:
        tmp = self.path.with_name(self.path.name + ".compact")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            data = b"".join(line for lines in self._live.values() for line in lines)
            _write_all(fd, data)
            os.rename(tmp, self.path)  # atomic: the name always holds a complete journal
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        old, self._fd = self._fd, fd
        os.close(old)
        self._size = len(data)
        self.compactions += 1

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                unfinished = len(self._live)
                os.close(self._fd)
                self._fd = -1
                if unfinished == 0:
                    self.path.unlink(missing_ok=True)


def remove_if_unlocked(path: Path) -> None:
    """Delete a compaction file its (dead) process never renamed: the journal it was
    meant to replace still holds every line it had."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # being written by a live process
    finally:
        os.close(fd)
    path.unlink(missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
