"""A call journaled before its entry is stored: a stream in progress, or a finished call
whose commit comes later. A crash leaves its ``open`` line, which reconciliation turns into
an entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from orchestra.accounting.budgets import Reservation
from orchestra.accounting.ledger.entries import LedgerEntry
from orchestra.providers.usage import Usage


class JournaledLedger(Protocol):
    """What a stream record needs of the ledger that made it (:class:`Ledger` is one);
    a protocol, so this module does not import the ledger that imports it."""

    clock: Callable[[], datetime]

    def journal_write(self, op: str, sid: str, record: dict[str, Any]) -> None: ...

    def append(
        self, entry: LedgerEntry, *, reservation: Reservation | None = None
    ) -> LedgerEntry: ...

    async def aappend(
        self, entry: LedgerEntry, *, reservation: Reservation | None = None, deferred: bool = False
    ) -> LedgerEntry: ...


class StreamRecord:
    """A streamed call in progress: journaled so a crash loses nothing."""

    def __init__(
        self,
        ledger: JournaledLedger,
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
        self.ledger.journal_write(
            "usage",
            self.id,
            {
                "op": "usage",
                "id": self.id,
                "t": self.ledger.clock().isoformat(),
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
            self.ttft_ms = (self.ledger.clock() - self.draft.started_at).total_seconds() * 1000

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
        self.ledger.journal_write("done", self.id, {"op": "done", "id": self.id})
