"""The ledger: one append-only entry per model call, durable before ``append`` returns.

**Durability.** ``append`` returns once the entry's transaction has committed (SQLite in
WAL mode, or PostgreSQL): a SIGKILL of the process afterwards cannot lose it. Concurrent
appends share a transaction (group commit, see :mod:`orchestra.accounting.store`), and an
entry can settle its budget reservation in that same transaction, so spend and ledger
never disagree.

**Streams.** ``open_stream`` writes the draft entry to a small append-only journal file
(``<home>/ledger-journal/<database>/<pid>-<id>.jsonl``) before the upstream call and
appends one line whenever the usage seen so far changes; each line is one ``write`` to a
file opened with ``O_APPEND``, so it survives a SIGKILL of the process (not a power cut:
there is no fsync per line). The live process holds an exclusive ``flock`` on its journal.
``reconcile_incomplete`` (run at startup) takes every journal whose lock is free (its
owner died), turns each unfinished stream into an entry with outcome ``reconciled``, the
usage seen so far and its cost, settles its reservation, and deletes the journal.

**Finished calls committed later.** ``journal_and_queue`` journals a finished call as one
``row`` line (the entry as its ``gateway_ledger`` row, and its reservation) and hands its
commit to the writer thread without waiting; after each batch commits, the writer appends
one ``done`` line naming every entry of the batch. Reconciliation commits the ``row``
entries not marked done, exactly as journaled, skipping any already in the database (a
crash between a commit and its ``done`` line), so an entry is never lost and never stored
twice. Journals of earlier versions, which wrote a ``final`` line with the entry's
:meth:`LedgerEntry.to_json` form instead, are reconciled the same way.

**Journal line forms.** ``{"op":"row","row":[...],"r":reservation}``: ``row`` holds the
values of :data:`_COLUMNS` in order (the id first), times as ISO-8601 text in UTC
(``YYYY-MM-DD HH:MM:SS.ffffff``, the text SQLite stores), the cost in integer nano-dollars,
the fallback path as stored (``" > "``-joined); ``r`` is the reservation's journal form or
``null``. ``{"op":"open","id":...,"entry":{...},"reservation":...}`` starts a stream,
``{"op":"usage","id":...,"t":...,"u":[...]}`` records its progress, ``{"op":"done","id":...}``
or ``{"op":"done","ids":[...]}`` ends records.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, select

from orchestra.accounting.attribution import Attribution
from orchestra.accounting.budgets import BudgetBook, Reservation, _Plan
from orchestra.accounting.errors import UnknownPrice
from orchestra.accounting.money import from_nano, to_nano
from orchestra.accounting.pricing import PriceTable
from orchestra.accounting.store import (
    AccountingStore,
    Batch,
    Clock,
    RowInsert,
    as_utc,
    sqlite_time,
    time_for,
    utcnow,
)
from orchestra.config.paths import orchestra_home
from orchestra.providers.usage import Usage
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayLedgerEntry

log = logging.getLogger("orchestra.accounting.ledger")

Outcome = Literal[
    "ok", "error", "client_disconnected", "budget_refused", "rate_limited", "reconciled"
]
OUTCOMES: tuple[str, ...] = (
    "ok",
    "error",
    "client_disconnected",
    "budget_refused",
    "rate_limited",
    "reconciled",
)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One model call."""

    attribution: Attribution
    requested_model: str | None = None
    served_model: str | None = None
    provider: str | None = None
    tier: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal | None = None
    """``None``: the ledger computes it from the price table for ``served_model``."""
    outcome: str = "ok"
    """One of :data:`OUTCOMES`."""
    error_type: str | None = None
    """For ``error``: what failed (e.g. ``upstream_529``, ``timeout``, ``invalid_request``)."""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    """Time to first token of a streamed reply."""
    retries: int = 0
    fallback_path: tuple[str, ...] = ()
    """Every attempt in order, e.g. ``("claude-opus-4-5:529", "claude-sonnet-4-5:ok")``."""
    stream: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the inverse of :meth:`from_json`)."""
        # Written out rather than dataclasses.asdict(): asdict deep-copies every field and
        # showed up as a few percent of the request path (one journal line per call).
        a, u = self.attribution, self.usage
        return {
            "attribution": a.as_dict(),
            "requested_model": self.requested_model,
            "served_model": self.served_model,
            "provider": self.provider,
            "tier": self.tier,
            "usage": [u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens],
            "cost_usd": str(self.cost_usd) if self.cost_usd is not None else None,
            "outcome": self.outcome,
            "error_type": self.error_type,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "retries": self.retries,
            "fallback_path": list(self.fallback_path),
            "stream": self.stream,
            "id": self.id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LedgerEntry:
        return cls(
            attribution=Attribution(**data["attribution"]),
            requested_model=data.get("requested_model"),
            served_model=data.get("served_model"),
            provider=data.get("provider"),
            tier=data.get("tier"),
            usage=Usage(*data.get("usage", [0, 0, 0, 0])),
            cost_usd=Decimal(data["cost_usd"]) if data.get("cost_usd") is not None else None,
            outcome=data.get("outcome", "ok"),
            error_type=data.get("error_type"),
            started_at=datetime.fromisoformat(data["started_at"])
            if data.get("started_at")
            else None,
            ended_at=datetime.fromisoformat(data["ended_at"]) if data.get("ended_at") else None,
            latency_ms=data.get("latency_ms"),
            ttft_ms=data.get("ttft_ms"),
            retries=data.get("retries", 0),
            fallback_path=tuple(data.get("fallback_path", ())),
            stream=data.get("stream", False),
            id=data["id"],
        )


_COLUMNS = (
    "id",
    "started_at",
    "ended_at",
    "org",
    "division",
    "tribe",
    "squad",
    "developer",
    "key_id",
    "agent",
    "run_id",
    "step",
    "tier",
    "requested_model",
    "served_model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_nano",
    "latency_ms",
    "ttft_ms",
    "retries",
    "fallback_path",
    "outcome",
    "error_type",
    "stream",
)
# Fixed SQL text on the hot path: no statement building or cache-key work per entry.
_INSERT = RowInsert("gateway_ledger", _COLUMNS)
_COST = _COLUMNS.index("cost_nano")

_QueuedEntry = tuple["_Journal", str, tuple[Any, ...], str, Reservation | None]
"""An entry journaled and waiting for the writer: its journal, id, row, the row as JSON
text (:func:`_row_json`) and the reservation it settles (``None``: nothing to settle)."""


def _insert_alone(conn: Connection, item: _QueuedEntry) -> bool:
    """Insert one queued entry's row in a savepoint; False (and logged) if it failed."""
    try:
        with conn.begin_nested():
            _INSERT.run_many(conn, [item[2]])
    except Exception as exc:
        log.error("ledger entry %s stays in the journal until the next start: %r", item[1], exc)
        return False
    return True


class _BatchRows:
    """The ledger rows of the running write batch, inserted together just before its
    commit. The queued entries' rows (:meth:`Ledger.journal_and_queue`, the gateway's many
    calls) go in, on SQLite, with one statement that reads them from one JSON text: one
    call into SQLite for all of them, which holds the GIL only to start it. Binding every
    value of every row made the writer take the GIL back once per row, and each time the
    event loop's thread had to stop for it (about a tenth of the gateway's throughput).
    Rows someone waits for (:meth:`Ledger.append`), and every row elsewhere, are bound."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.texts: list[str] = []
        """Rows already in :func:`_row_json` form (SQLite only)."""

    @classmethod
    def of(cls, batch: Batch) -> _BatchRows:
        rows: _BatchRows | None = batch.state.get("ledger_rows")
        if rows is None:
            rows = batch.state["ledger_rows"] = cls()
            batch.at_end("ledger_rows", rows.insert)
        return rows

    def insert(self, conn: Connection) -> None:
        _INSERT.run_json(conn, self.texts)  # queued entries, in number
        _INSERT.run_many(conn, self.rows)  # entries someone waits for, a few


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def _not_json(value: object) -> Any:
    raise TypeError(f"not a JSON value in a journal row: {value!r}")


def _flat_encoder() -> Callable[[object], str]:
    """The encoder of ``row`` lines: only JSON's own types (a Decimal or datetime there is a
    bug, not text), compact, ASCII. The C encoder is made once and called directly: going
    through ``JSONEncoder.encode`` makes a new one per call, a third of the encoding time."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(
            separators=(",", ":"), check_circular=False, default=_not_json
        ).encode
    encode = make(
        None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )
    return lambda value: "".join(encode(value, 0))


_FLAT = _flat_encoder()


def _row(e: LedgerEntry, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The entry's ``gateway_ledger`` row, in :data:`_COLUMNS` order; ``time`` puts a
    datetime in the column's form (:func:`~orchestra.accounting.store.time_for`)."""
    a, u = e.attribution, e.usage
    assert e.started_at is not None and e.ended_at is not None and e.cost_usd is not None
    return (
        e.id,
        time(e.started_at),
        time(e.ended_at),
        a.org,
        a.division,
        a.tribe,
        a.squad,
        a.developer,
        a.key_id,
        a.agent,
        a.run_id,
        a.step,
        e.tier,
        e.requested_model,
        e.served_model,
        e.provider,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        to_nano(e.cost_usd),
        e.latency_ms,
        e.ttft_ms,
        e.retries,
        " > ".join(e.fallback_path),
        e.outcome,
        e.error_type,
        e.stream,
    )


def _portable(row: tuple[Any, ...]) -> tuple[Any, ...] | list[Any]:
    """A :func:`_row` as a ``row`` journal line holds it: the same values, the two times as
    UTC text (SQLite's rows have them so already, and are used as they are)."""
    started, ended = row[1], row[2]
    if type(started) is str:
        return row
    out = list(row)
    out[1] = sqlite_time(started)
    out[2] = sqlite_time(ended)
    return out


def _row_json(row: tuple[Any, ...]) -> str:
    """A :func:`_row` as JSON text, as a ``row`` journal line holds it (:func:`_portable`)."""
    return _FLAT(_portable(row))


def _row_line(row_json: str, reservation: Reservation | None) -> bytes:
    """The ``row`` journal line of a finished call whose :func:`_row_json` is ``row_json``."""
    return f'{{"op":"row","row":{row_json},"r":{_FLAT(_reservation_json(reservation))}}}\n'.encode()


def _utc(text: str) -> datetime:
    """A journaled time: UTC unless the text says otherwise."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def entry_from_values(v: list[Any]) -> LedgerEntry:
    """A :class:`LedgerEntry` from a ``row`` journal line's values (:data:`_COLUMNS` order)."""
    (
        eid,
        started,
        ended,
        org,
        division,
        tribe,
        squad,
        developer,
        key_id,
        agent,
        run_id,
        step,
        tier,
        requested_model,
        served_model,
        provider,
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        cost_nano,
        latency_ms,
        ttft_ms,
        retries,
        fallback_path,
        outcome,
        error_type,
        stream,
    ) = v
    return LedgerEntry(
        attribution=Attribution(
            org, division, tribe, squad, developer, key_id, agent, run_id, step
        ),
        requested_model=requested_model,
        served_model=served_model,
        provider=provider,
        tier=tier,
        usage=Usage(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens),
        cost_usd=from_nano(cost_nano),
        outcome=outcome,
        error_type=error_type,
        started_at=_utc(started),
        ended_at=_utc(ended),
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        retries=retries,
        fallback_path=tuple(p for p in fallback_path.split(" > ") if p),
        stream=bool(stream),
        id=eid,
    )


def entry_from_row(r: Any) -> LedgerEntry:
    """A :class:`LedgerEntry` from a ``gateway_ledger`` row."""
    return LedgerEntry(
        attribution=Attribution(
            r.org, r.division, r.tribe, r.squad, r.developer, r.key_id, r.agent, r.run_id, r.step
        ),
        requested_model=r.requested_model,
        served_model=r.served_model,
        provider=r.provider,
        tier=r.tier,
        usage=Usage(r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens),
        cost_usd=from_nano(r.cost_nano),
        outcome=r.outcome,
        error_type=r.error_type,
        started_at=as_utc(r.started_at),
        ended_at=as_utc(r.ended_at),
        latency_ms=r.latency_ms,
        ttft_ms=r.ttft_ms,
        retries=r.retries,
        fallback_path=tuple(p for p in r.fallback_path.split(" > ") if p),
        stream=r.stream,
        id=r.id,
    )


def _reservation_json(r: Reservation | None) -> dict[str, Any] | None:
    # The budgets' own journal form: a leased hold keeps its lease id.
    return None if r is None or r.empty else r.as_json()


def _reservation_from(data: dict[str, Any] | None) -> Reservation | None:
    return Reservation.from_json(data) if data else None


class _Journal:
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
        self.write_line(op, sid, (_ENCODER.encode(record) + "\n").encode())

    def write_line(self, op: str, sid: str, line: bytes) -> None:
        """Append ``line`` (one JSON record and a newline) for record ``sid``: ``open``,
        ``row`` (or ``final``) starts it, ``usage`` replaces its progress, ``done`` ends it."""
        with self._lock:
            if self._fd < 0:
                raise RuntimeError("the ledger journal is closed")
            # The bookkeeping and the write happen under one lock, so a compaction can
            # never drop the line of a record that is opening at the same moment.
            live = self._live.get(sid)
            if op == "row" or op == "open" or op == "final":
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

    def mark_done(self, ids: list[str]) -> None:
        """End the records ``ids`` with one line (a committed batch)."""
        if not ids:
            return
        line = (_ENCODER.encode({"op": "done", "ids": ids}) + "\n").encode()
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


def _remove_if_unlocked(path: Path) -> None:
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


class _Committed:
    """What follows the commit of a batch of queued entries (on the writer thread): one
    ``done`` line per journal for all of them, and their budget alerts."""

    def __init__(self, budgets: BudgetBook | None) -> None:
        self.budgets = budgets
        self.ids: dict[_Journal, list[str]] = {}
        self.plans: list[_Plan] = []

    @classmethod
    def of_batch(cls, batch: Batch, budgets: BudgetBook | None) -> _Committed:
        """The running batch's instance (made, and run after its commit, on first use)."""
        committed: _Committed | None = batch.state.get("ledger_committed")
        if committed is None:
            committed = batch.state["ledger_committed"] = cls(budgets)
            batch.after_commit("ledger_committed", committed.run)
        return committed

    def run(self) -> None:
        if self.budgets is not None:
            for plan in self.plans:
                self.budgets._after(plan)
        for journal, ids in self.ids.items():
            journal.mark_done(ids)


class StreamRecord:
    """A streamed call in progress: journaled so a crash loses nothing."""

    def __init__(
        self,
        ledger: Ledger,
        draft: LedgerEntry,
        reservation: Reservation | None,
        *,
        pending: bool = False,
    ) -> None:
        self.ledger = ledger
        self.pending = pending
        """A finished call journaled before its commit (:meth:`Ledger.open_pending`)."""
        self.draft = draft
        self.reservation = reservation
        self.usage = draft.usage
        self.ttft_ms: float | None = None
        self.finished = False

    @property
    def id(self) -> str:
        return self.draft.id

    def progress(self, usage: Usage) -> None:
        """Record the usage seen so far (cheap: one small journal write, only if it changed)."""
        if usage == self.usage or self.finished:
            return
        self.usage = usage
        self.ledger._journal_write(
            "usage",
            self.id,
            {
                "op": "usage",
                "id": self.id,
                "t": self.ledger._clock().isoformat(),
                "u": [
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.cache_read_tokens,
                    usage.cache_write_tokens,
                ],
            },
        )

    def first_token(self) -> None:
        """Mark the first token; sets ``ttft_ms`` once."""
        if self.ttft_ms is None and self.draft.started_at is not None:
            self.ttft_ms = (self.ledger._clock() - self.draft.started_at).total_seconds() * 1000

    def _final(self, changes: dict[str, Any]) -> LedgerEntry:
        changes.setdefault("usage", self.usage)
        changes.setdefault("ttft_ms", self.ttft_ms)
        return replace(self.draft, **changes)

    def finish(self, **changes: Any) -> LedgerEntry:
        """Append the final entry (fields of :class:`LedgerEntry` to change, e.g. ``usage``,
        ``outcome``, ``served_model``) and settle the reservation; durable on return."""
        if self.finished:
            raise RuntimeError("this stream record is already finished")
        entry = self.ledger.append(self._final(changes), reservation=self.reservation)
        self._done()
        return entry

    async def afinish(self, **changes: Any) -> LedgerEntry:
        """:meth:`finish` without blocking the event loop."""
        if self.finished:
            raise RuntimeError("this stream record is already finished")
        # A pending call's entry is already durable in the journal: its commit may ride
        # along with the next batch (see GroupCommitter.arun).
        entry = await self.ledger.aappend(
            self._final(changes), reservation=self.reservation, deferred=self.pending
        )
        self._done()
        return entry

    def _done(self) -> None:
        self.finished = True
        self.ledger._journal_write("done", self.id, {"op": "done", "id": self.id})


class Ledger:
    """Append entries durably, journal streams, reconcile after a crash, read entries back."""

    def __init__(
        self,
        db: Database | AccountingStore,
        *,
        prices: PriceTable | None = None,
        budgets: BudgetBook | None = None,
        journal_dir: Path | None = None,
        journal_max_bytes: int = 8_000_000,
        clock: Clock = utcnow,
    ) -> None:
        self._store = AccountingStore.of(db)
        self._prices = prices
        self._budgets = budgets
        self._clock = clock
        self._time = time_for(self._store.dialect)
        url = self._store.db.engine.url.render_as_string(hide_password=True)
        digest = hashlib.sha256(url.encode()).hexdigest()[:12]
        self.journal_dir = (journal_dir or orchestra_home() / "ledger-journal") / digest
        self._journal: _Journal | None = None
        self._journal_lock = threading.Lock()
        self._queued: list[_QueuedEntry] = []
        """Journaled entries waiting for the writer (see :meth:`journal_and_queue`)."""
        self._queue_lock = threading.Lock()
        self.journal_max_bytes = journal_max_bytes
        """The journal is compacted once it outgrows this (see :class:`_Journal`)."""

    # -- writing -------------------------------------------------------------------

    def _complete(self, entry: LedgerEntry, reservation: Reservation | None = None) -> LedgerEntry:
        started, ended = entry.started_at, entry.ended_at
        if started is None or ended is None:
            now = self._clock()
            started = started or now
            ended = ended or now
        cost = entry.cost_usd
        if cost is None:
            cost = Decimal(0)
            model = entry.served_model or entry.requested_model
            if self._prices is not None and model and entry.usage.total_tokens:
                try:
                    cost = self._prices.cost(model, entry.usage)
                except UnknownPrice:
                    # Unknown is never free: charge what was reserved (the most the call
                    # could cost when it was admitted) and say so.
                    cost = reservation.estimate_usd if reservation is not None else Decimal(0)
                    log.error(
                        "no price for model %s: ledger entry %s charged its reservation $%s",
                        model,
                        entry.id,
                        cost,
                    )
        latency = entry.latency_ms
        if latency is None:
            latency = (ended - started).total_seconds() * 1000
        outcome, error_type = entry.outcome, entry.error_type
        if outcome not in OUTCOMES:
            # Never lose an entry over a label: keep it as an error and say what it was.
            log.warning("unknown ledger outcome %r recorded as error", outcome)
            outcome, error_type = "error", error_type or outcome
        if (
            started is entry.started_at
            and ended is entry.ended_at
            and cost is entry.cost_usd
            and latency is entry.latency_ms
            and outcome is entry.outcome
        ):
            return entry  # complete already: no copy
        return replace(
            entry,
            started_at=started,
            ended_at=ended,
            cost_usd=cost,
            latency_ms=latency,
            outcome=outcome,
            error_type=error_type,
        )

    def _to_settle(self, reservation: Reservation | None) -> Reservation | None:
        """``reservation`` when storing its entry must settle it (budgets kept here, and
        something held), else ``None``."""
        if self._budgets is None or reservation is None or reservation.empty:
            return None
        return reservation

    def _job(
        self, entry: LedgerEntry, reservation: Reservation | None
    ) -> Callable[[Connection], _Plan | None]:
        """The database work of storing ``entry`` (and settling ``reservation``)."""
        held = self._to_settle(reservation)
        settle = (
            self._budgets.settle_job(held, entry.cost_usd)
            if self._budgets is not None and held is not None
            else None
        )
        row = _row(entry, self._time)  # immutable: a failed batch may run the job again
        committer = self._store.committer

        def job(conn: Connection) -> _Plan | None:
            _BatchRows.of(committer.batch).rows.append(row)
            return settle(conn) if settle is not None else None

        return job

    def _drain_job(self) -> Callable[[Connection], None]:
        """The writer's job for the entries queued by :meth:`journal_and_queue`: it takes
        every entry queued when it first runs (one job per batch, not one per call), and
        runs with those same entries again if its batch is retried."""
        taken: list[_QueuedEntry] | None = None
        committer = self._store.committer
        budgets = self._budgets

        def job(conn: Connection) -> None:
            nonlocal taken
            batch = committer.batch
            if taken is None:
                with self._queue_lock:
                    taken, self._queued = self._queued, []
                rows = _BatchRows.of(batch)
                if conn.dialect.name == "sqlite":
                    rows.texts.extend(item[3] for item in taken)
                else:
                    rows.rows.extend(item[2] for item in taken)
            else:
                # A retry, alone, after the batch failed: each entry in a savepoint, so one
                # that cannot be stored stays in the journal without holding back the rest.
                taken = [item for item in taken if _insert_alone(conn, item)]
            committed = _Committed.of_batch(batch, budgets)
            if budgets is not None:
                plan = _Plan()
                settlements = [(item[4], item[2][_COST]) for item in taken if item[4] is not None]
                if settlements:
                    budgets.settle_in_batch(settlements, plan)
                    committed.plans.append(plan)
            ids = committed.ids
            for journal, eid, *_ in taken:
                done = ids.get(journal)
                if done is None:
                    done = ids[journal] = []
                done.append(eid)

        return job

    def append(self, entry: LedgerEntry, *, reservation: Reservation | None = None) -> LedgerEntry:
        """Store ``entry`` (and settle ``reservation`` to its cost); returns after commit."""
        entry = self._complete(entry, reservation)
        plan = self._store.committer.run(self._job(entry, reservation))
        if plan is not None and self._budgets is not None:
            self._budgets._after(plan)
        return entry

    async def aappend(
        self,
        entry: LedgerEntry,
        *,
        reservation: Reservation | None = None,
        deferred: bool = False,
    ) -> LedgerEntry:
        """:meth:`append` without blocking the event loop. ``deferred``: the entry is
        durable elsewhere already (a journal), so its commit may wait for the next batch
        (up to a few milliseconds)."""
        entry = self._complete(entry, reservation)
        plan = await self._store.committer.arun(self._job(entry, reservation), deferred=deferred)
        if plan is not None and self._budgets is not None:
            self._budgets._after(plan)
        return entry

    def journal_and_queue(
        self, entry: LedgerEntry, *, reservation: Reservation | None = None
    ) -> LedgerEntry:
        """Store a finished call without waiting for the database: durable on return (one
        ``row`` journal line with the entry and its reservation), committed with the
        writer's next batch, which settles ``reservation`` and marks the entry done in the
        journal. A crash before that commits it at the next start (``reconcile_incomplete``).

        Raises only before the journal line is written (then nothing was stored: append
        the entry another way); after it, a failure to queue is logged and left to
        reconciliation, so the entry can never be stored twice.
        """
        entry = self._complete(entry, reservation)
        # One set of values for both: the row the writer inserts, and the journal's copy.
        row = _row(entry, self._time)
        text = _row_json(row)
        line = _row_line(text, reservation)
        journal = self._current_journal()
        settle = self._to_settle(reservation)
        journal.write_line("row", entry.id, line)
        try:
            with self._queue_lock:
                self._queued.append((journal, entry.id, row, text, settle))
                if len(self._queued) == 1:
                    # The first entry since the writer last took them: one job for all the
                    # entries queued until it runs (under the lock, so a flush that starts
                    # now finds the job counted).
                    try:
                        self._store.committer.enqueue(self._drain_job(), "queued ledger entries")
                    except BaseException:
                        self._queued = []
                        raise
        except Exception:
            log.exception("ledger entry %s stays in the journal until the next start", entry.id)
        return entry

    # -- streams -------------------------------------------------------------------

    def _current_journal(self) -> _Journal:
        journal = self._journal
        if journal is not None:
            return journal
        with self._journal_lock:
            if self._journal is None:
                self._journal = _Journal(self.journal_dir, max_bytes=self.journal_max_bytes)
            return self._journal

    def _journal_write(self, op: str, sid: str, record: dict[str, Any]) -> None:
        self._current_journal().write(op, sid, record)

    @property
    def journal_size(self) -> int:
        """Bytes in this process's journal file now (0 before its first use)."""
        journal = self._journal
        return journal.size if journal is not None else 0

    def open_stream(
        self, draft: LedgerEntry, *, reservation: Reservation | None = None
    ) -> StreamRecord:
        """Journal ``draft`` before the upstream call; finish the returned record at the end."""
        return self._open(replace(draft, stream=True), reservation, pending=False)

    def open_pending(
        self, entry: LedgerEntry, *, reservation: Reservation | None = None
    ) -> StreamRecord:
        """Journal a call that has finished but whose database commit comes later (e.g.
        after the answer was sent): durable on return, and reconciled after a crash with
        its own ``stream`` flag. Finish the returned record to commit it."""
        return self._open(entry, reservation, pending=True)

    def _open(
        self, draft: LedgerEntry, reservation: Reservation | None, *, pending: bool
    ) -> StreamRecord:
        draft = replace(draft, started_at=draft.started_at or self._clock())
        self._journal_write(
            "open",
            draft.id,
            {
                "op": "open",
                "id": draft.id,
                "entry": draft.to_json(),
                "reservation": _reservation_json(reservation),
            },
        )
        return StreamRecord(self, draft, reservation, pending=pending)

    def reconcile_incomplete(self) -> list[LedgerEntry]:
        """Turn unfinished streams of dead processes into ``reconciled`` entries."""
        if not self.journal_dir.is_dir():
            return []
        own = self._journal.path if self._journal is not None else None
        out: list[LedgerEntry] = []
        for leftover in self.journal_dir.glob("*.jsonl.compact"):
            _remove_if_unlocked(leftover)
        for path in sorted(self.journal_dir.glob("*.jsonl")):
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
                out.extend(self._reconcile_file(path, fd))
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return out

    def _reconcile_file(self, path: Path, fd: int) -> list[LedgerEntry]:
        drafts: dict[str, tuple[LedgerEntry, Reservation | None]] = {}
        finals: set[str] = set()  # journaled finished: committed as they are, not reconciled
        progress: dict[str, tuple[Usage, datetime | None]] = {}
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        for line in b"".join(chunks).splitlines():
            try:
                rec = json.loads(line)
                op = rec["op"]
                if op == "done" and "ids" in rec:  # one line for a committed batch
                    for sid in rec["ids"]:
                        drafts.pop(sid, None)
                    continue
                if op == "row":  # a finished call (its row)
                    entry = entry_from_values(rec["row"])
                    drafts[entry.id] = (entry, _reservation_from(rec.get("r")))
                    finals.add(entry.id)
                    continue
                sid = rec["id"]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by the crash
            if op == "open" or op == "final":  # "final": a finished call, earlier versions
                drafts[sid] = (
                    LedgerEntry.from_json(rec["entry"]),
                    _reservation_from(rec.get("reservation")),
                )
                if op == "final":
                    finals.add(sid)
            elif op == "usage":
                progress[sid] = (
                    Usage(*rec["u"]),
                    datetime.fromisoformat(rec["t"]) if rec.get("t") else None,
                )
            elif op == "done":
                drafts.pop(sid, None)
        if not drafts:
            return []
        existing: set[str] = set()
        ids = list(drafts)
        with self._store.db.session() as session:
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
            usage, last = progress.get(sid, (draft.usage, None))
            entry = replace(
                draft,
                usage=usage,
                outcome="reconciled",
                ended_at=last or draft.started_at,
                cost_usd=None,
                error_type="gateway_crash",
            )
            todo.append((entry, reservation))
        # All at once through the writer: one transaction for many, not one each.
        out: list[LedgerEntry] = []
        waiting = []
        for entry, reservation in todo:
            entry = self._complete(entry, reservation)
            out.append(entry)
            waiting.append(self._store.committer.submit(self._job(entry, reservation)))
        for entry, future in zip(out, waiting, strict=True):
            plan = future.result()
            if plan is not None and self._budgets is not None:
                self._budgets._after(plan)
            if entry.id in finals:
                log.warning("committed journaled ledger entry %s from %s", entry.id, path.name)
            else:
                log.warning("reconciled unfinished stream %s from %s", entry.id, path.name)
        return out

    # -- reading -------------------------------------------------------------------

    def flush(self) -> None:
        """Return once every entry this process queued (:meth:`journal_and_queue`) has
        committed: the reads below then see this process's own calls."""
        self._store.committer.flush()

    def entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        run_id: str | None = None,
        developer: str | None = None,
    ) -> list[LedgerEntry]:
        """Entries by start time (oldest first), optionally within ``[since, until)``, of one
        run or one developer; this process's queued entries included (committed first)."""
        self.flush()
        query = select(GatewayLedgerEntry).order_by(
            GatewayLedgerEntry.started_at, GatewayLedgerEntry.id
        )
        if since is not None:
            query = query.where(GatewayLedgerEntry.started_at >= since)
        if until is not None:
            query = query.where(GatewayLedgerEntry.started_at < until)
        if run_id is not None:
            query = query.where(GatewayLedgerEntry.run_id == run_id)
        if developer is not None:
            query = query.where(GatewayLedgerEntry.developer == developer)
        if limit is not None:
            query = query.limit(limit)
        with self._store.db.session() as session:
            return [entry_from_row(r) for r in session.scalars(query)]

    def close(self) -> None:
        """Commit the queued entries (:meth:`journal_and_queue`), then release this
        process's journal (deleted when no stream is unfinished)."""
        if self._journal is not None:
            try:
                self._store.committer.flush()
            except Exception:
                log.exception("queued ledger entries not committed: the journal keeps them")
        with self._journal_lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
