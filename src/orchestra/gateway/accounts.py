"""What the request path needs from accounting, as one small interface.

The gateway talks to keys, limits, budgets, prices and the ledger only through
:class:`Accountant`. :class:`orchestra.gateway.store_accountant.StoreAccountant` implements
it over :mod:`orchestra.accounting` (the database); :class:`MemoryAccountant` keeps
everything in memory, for tests of the request path and for the benchmark's comparisons.
Every method is synchronous and may block: the gateway calls them on worker threads.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from orchestra.accounting.keys import KeyHolding
from orchestra.gateway.errors import LimitRefused, UnpricedModel
from orchestra.providers.usage import Usage


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated owner of a key."""

    key_id: str
    developer: str
    team: str | None
    admin: bool = False
    allowed_models: frozenset[str] | None = None
    """Names this key may request; ``None`` means every configured name."""
    attribution: Any = None
    """Accounting's attribution record (org units above the team), opaque here."""
    run_id: str | None = None
    """The pipeline run a run key belongs to: its calls are charged to that run."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One upstream call made while serving a request."""

    model: str
    provider: str
    status: int | None
    """HTTP status, or ``None`` when no response came (timeout, connection error)."""
    error: str | None
    latency_ms: float


@dataclass
class CallRecord:
    """Everything the ledger keeps about one model call."""

    request_id: str
    started_at: datetime
    caller: Caller
    client_format: str
    requested_model: str
    tier: str | None = None
    agent: str | None = None
    run_id: str | None = None
    step: str | None = None
    served_model: str | None = None
    provider: str | None = None
    stream: bool = False
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal = Decimal(0)
    latency_ms: float | None = None
    ttft_ms: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    outcome: str = "pending"
    """``ok``, ``upstream_error``, ``client_error``, ``client_disconnected``,
    ``stream_failed``, ``budget_refused``, ``rate_limited``."""
    status: int | None = None
    error: str | None = None
    reserved_usd: Decimal = Decimal(0)
    """What was held on the budgets before the call (charged if the price vanished)."""
    rule: str | None = None
    """The routing rule that chose the chain (``agent:NAME``, ``category:NAME``,
    ``team:NAME``), ``None`` for the tier's own chain."""


class Reservation(Protocol):
    """An amount held against every applicable budget until settled or released."""


class StreamJournal(Protocol):
    """The durable record of a stream in progress (reconciled after a crash)."""

    def progress(self, usage: Usage, cost_usd: Decimal) -> None:
        """Journal the usage seen so far."""

    async def close(self, record: CallRecord) -> None:
        """Append the final ledger entry, settle the reservation, drop the journal."""


class Accountant(Protocol):
    """Keys, limits, budgets, prices and the ledger, as the request path sees them."""

    def authenticate(self, secret: str) -> Caller | None:
        """The caller owning ``secret``; ``None`` when unknown, revoked or expired."""

    def keys_version(self) -> int:
        """A number that moves whenever a key may have changed, in any process: callers
        cached under another number are authenticated again. Called on the event loop for
        every request, so it must be cheap (it never waits for the network)."""

    def cost(self, model: str, usage: Usage) -> Decimal:
        """The price of ``usage`` on ``model`` in US dollars; raises
        :class:`~orchestra.gateway.errors.UnpricedModel` when the model has no price
        (unknown is never free)."""

    def price_known(self, model: str) -> bool:
        """Whether ``model`` has a price (zero included, e.g. a local model)."""

    async def admit(
        self, caller: Caller, run_id: str | None, model: str, tokens: int, usd: Decimal
    ) -> Any:
        """Count the request against the caller's rate limits (``tokens`` estimated), then
        hold ``usd`` on every applicable budget; returns the reservation. Raises
        :class:`LimitRefused` naming the limit or budget (and when it resets). Never blocks
        the event loop."""

    def refused(self, record: CallRecord, refusal: LimitRefused) -> None:
        """Record a call a budget or a rate limit refused (outcome ``budget_refused`` or
        ``rate_limited``) without waiting for the database (the row is queued); never
        raises, never blocks the event loop."""

    def journal_call(self, reservation: Any, record: CallRecord) -> None:
        """Journal the admitted call before its upstream request (an ``open`` line), so a
        crash at any later moment leaves its entry, reconciled at the next start. The
        call's finish (:meth:`finish`, :meth:`journal_and_queue` or its stream's close)
        ends the line. Never raises (the call goes on without it); never blocks the event
        loop for long (one journal write)."""

    async def finish(self, reservation: Any, record: CallRecord) -> None:
        """Append the ledger entry and settle ``reservation`` to ``record.cost_usd`` (to $0
        when the call failed); durable when this returns. Never blocks the event loop."""

    def journal_and_queue(self, reservation: Any, record: CallRecord) -> bool:
        """Make the finished call durable now without a database round trip (a journal line
        that crash reconciliation turns into an entry) and queue its commit, which settles
        ``reservation``, to happen on its own: nothing to await. ``False`` when not
        supported (the gateway then awaits :meth:`finish`). Raises only when nothing was
        recorded (then :meth:`finish` it); never blocks the event loop for long (one
        journal write)."""

    def open_stream(self, draft: CallRecord, reservation: Any) -> StreamJournal:
        """Start the durable journal of a streamed call (its close settles ``reservation``)."""

    def reconcile_incomplete(self) -> int:
        """Turn journals left by a crash into ledger entries; returns how many."""

    def spend(self, developer: str | None) -> dict[str, Any]:
        """Spend totals, of one developer or (``None``) of everyone."""

    def headroom(self) -> list[tuple[str, Decimal]]:
        """(budget name, dollars left) of each hard-capped budget, for ``/metrics``."""

    def healthy(self) -> bool:
        """Whether the database answers."""

    def exposition(self) -> str:
        """Accounting's own ``/metrics`` lines (Prometheus text, each ending in a newline;
        empty when there are none). Never raises: a scrape must not fail half-way."""

    def audit(self, caller: Caller, action: str, target: str, details: dict[str, Any]) -> None:
        """Append a management action to the audit log."""

    def open_run(
        self, caller: Caller, run_id: str, budget_usd: Decimal | None, holding: Holding = None
    ) -> str:
        """A new key for pipeline run ``run_id`` of the caller's developer and team, with
        the run's budget set to ``budget_usd``; returns its secret. The run's earlier keys
        are revoked; for a worker (``holding``) only those it fences off, so another live
        worker holding part of the run keeps its key. Raises an accounting error when the
        run is someone else's."""

    def end_run(self, caller: Caller, run_id: str) -> int:
        """Revoke the keys of run ``run_id`` (the caller's, or any with an admin key);
        returns how many were still usable."""


Holding = KeyHolding | None
"""The worker a run's new key is for (``None``: one process holds the run)."""


@dataclass
class _MemoryJournal:
    owner: MemoryAccountant
    draft: CallRecord
    reservation: Any
    last: Usage = field(default_factory=Usage)

    def progress(self, usage: Usage, cost_usd: Decimal) -> None:
        self.last = usage

    async def close(self, record: CallRecord) -> None:
        with self.owner.lock:
            self.owner.open_streams.pop(self.draft.request_id, None)
        await self.owner.finish(self.reservation, record)


@dataclass
class _MemoryReservation:
    budgets: list[str]
    usd: Decimal


@dataclass
class MemoryAccountant:
    """In-memory keys, budgets and ledger: for tests and benchmarks, not for production
    (nothing survives a restart)."""

    keys: dict[str, Caller] = field(default_factory=dict)
    holders: dict[str, str] = field(default_factory=dict)
    """The worker holding each run key (by secret), when one does."""
    budgets: dict[str, Decimal] = field(default_factory=dict)
    """Budget name (``developer:alice``, ``team:payments``, ``run:ID``) -> cap in dollars."""
    prices: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    """Model -> (input, output) dollars per million tokens."""
    free_models: frozenset[str] = frozenset()
    """Models that cost nothing (local); any other model without a price is refused."""
    rpm: dict[str, int] = field(default_factory=dict)
    """Limit name (``key:ID``) -> requests allowed (in total: no window, for tests)."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    spent: dict[str, Decimal] = field(default_factory=dict)
    held: dict[str, Decimal] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    entries: list[CallRecord] = field(default_factory=list)
    refusals: list[CallRecord] = field(default_factory=list)
    """Calls refused by a budget or a rate limit (:meth:`refused`)."""
    open_streams: dict[str, CallRecord] = field(default_factory=dict)
    audit_log: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_key(self, developer: str, team: str | None = None, *, admin: bool = False) -> str:
        """Create a key and return its secret."""
        secret = f"orc_test_{uuid.uuid4().hex}"
        self.keys[secret] = Caller(uuid.uuid4().hex[:12], developer, team, admin)
        return secret

    def authenticate(self, secret: str) -> Caller | None:
        return self.keys.get(secret)

    def keys_version(self) -> int:
        return 0  # the keys live in this object only: nothing changes them elsewhere

    def check_limits(self, caller: Caller, tokens: int) -> None:
        name = f"key:{caller.key_id}"
        with self.lock:
            cap = self.rpm.get(name)
            used = self.counts.get(name, 0)
            if cap is not None and used >= cap:
                raise LimitRefused(
                    f"rate limit {name} reached ({cap} requests)",
                    hint="wait and retry",
                    retry_after_s=60,
                    code="rate_limit_exceeded",
                )
            self.counts[name] = used + 1

    def price_known(self, model: str) -> bool:
        return model in self.prices or model in self.free_models

    def cost(self, model: str, usage: Usage) -> Decimal:
        found = self.prices.get(model)
        if found is None:
            if model in self.free_models:
                return Decimal(0)
            raise UnpricedModel(model)
        inp, out = found
        tokens_in = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
        return (inp * tokens_in + out * usage.output_tokens) / Decimal(1_000_000)

    def _applicable(self, caller: Caller, run_id: str | None) -> list[str]:
        names = [f"developer:{caller.developer}", f"team:{caller.team}", "org"]
        run_id = caller.run_id or run_id  # a run key's run binds
        if run_id:
            names.append(f"run:{run_id}")
        return [n for n in names if n in self.budgets]

    def reserve(
        self, caller: Caller, run_id: str | None, model: str, usd: Decimal
    ) -> _MemoryReservation:
        names = self._applicable(caller, run_id) if usd > 0 else []
        with self.lock:
            for name in names:
                used = self.spent.get(name, Decimal(0)) + self.held.get(name, Decimal(0))
                if used + usd > self.budgets[name]:
                    raise LimitRefused(
                        f"budget {name} is exhausted (cap ${self.budgets[name]})",
                        hint="ask an admin to raise the budget, or wait until it resets",
                        retry_after_s=3600,
                        code="budget_exceeded",
                    )
            for name in names:
                self.held[name] = self.held.get(name, Decimal(0)) + usd
        return _MemoryReservation(names, usd)

    def refused(self, record: CallRecord, refusal: LimitRefused) -> None:
        record.outcome = "budget_refused" if refusal.code == "budget_exceeded" else "rate_limited"
        with self.lock:
            self.refusals.append(record)

    def journal_call(self, reservation: Any, record: CallRecord) -> None:
        return None  # nothing survives a crash in memory anyway

    async def admit(
        self, caller: Caller, run_id: str | None, model: str, tokens: int, usd: Decimal
    ) -> _MemoryReservation:
        self.check_limits(caller, tokens)
        return self.reserve(caller, run_id, model, usd)

    async def finish(self, reservation: Any, record: CallRecord) -> None:
        self._finish_now(reservation, record)

    def _finish_now(self, reservation: Any, record: CallRecord) -> None:
        assert isinstance(reservation, _MemoryReservation)
        with self.lock:
            for name in reservation.budgets:
                self.held[name] -= reservation.usd
                self.spent[name] = self.spent.get(name, Decimal(0)) + record.cost_usd
            reservation.budgets = []
            self.entries.append(record)

    def journal_and_queue(self, reservation: Any, record: CallRecord) -> bool:
        self._finish_now(reservation, record)  # in memory, "queued" and "done" are one
        return True

    def open_stream(self, draft: CallRecord, reservation: Any) -> StreamJournal:
        with self.lock:
            self.open_streams[draft.request_id] = draft
        return _MemoryJournal(self, draft, reservation)

    def reconcile_incomplete(self) -> int:
        return 0

    def spend(self, developer: str | None) -> dict[str, Any]:
        with self.lock:
            rows = [e for e in self.entries if developer is None or e.caller.developer == developer]
        total = sum((e.cost_usd for e in rows), Decimal(0))
        return {"developer": developer, "calls": len(rows), "cost_usd": str(total)}

    def headroom(self) -> list[tuple[str, Decimal]]:
        with self.lock:
            return [
                (name, cap - self.spent.get(name, Decimal(0)) - self.held.get(name, Decimal(0)))
                for name, cap in self.budgets.items()
            ]

    def healthy(self) -> bool:
        return True

    def exposition(self) -> str:
        return ""

    def audit(self, caller: Caller, action: str, target: str, details: dict[str, Any]) -> None:
        with self.lock:
            self.audit_log.append((caller.key_id, action, target, details))

    def open_run(
        self, caller: Caller, run_id: str, budget_usd: Decimal | None, holding: Holding = None
    ) -> str:
        secret = f"orc_test_{uuid.uuid4().hex}"
        with self.lock:
            for earlier in [s for s, c in self.keys.items() if c.run_id == run_id]:
                if holding is None or holding.fences(self.holders.get(earlier)):
                    del self.keys[earlier]
                    self.holders.pop(earlier, None)
            self.keys[secret] = Caller(
                uuid.uuid4().hex[:12], caller.developer, caller.team, run_id=run_id
            )
            if holding is not None:
                self.holders[secret] = holding.holder
            if budget_usd is not None:
                self.budgets[f"run:{run_id}"] = budget_usd
        return secret

    def end_run(self, caller: Caller, run_id: str) -> int:
        with self.lock:
            ended = [s for s, c in self.keys.items() if c.run_id == run_id]
            for secret in ended:
                del self.keys[secret]
                self.holders.pop(secret, None)
        return len(ended)
