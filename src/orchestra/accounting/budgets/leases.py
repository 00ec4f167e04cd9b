"""Budget leases: a process reserves a block of a window's headroom once and grants
per-call reservations from it in memory.

A lease is taken with the same conditional ``UPDATE`` as a reservation (so the block counts
as reserved in the database and the budget invariant keeps holding across processes), and
recorded as a hold row like a reservation's. Settling a leased call moves its estimate out
of the lease's hold row and the window's reserved amount into spent; whoever removes an
amount from a hold row gives it back, so an expired lease is never returned twice. Near
the cap (headroom under ``exact_below`` estimates) every call is reserved exactly, and a
call is refused only when that exact reservation fails. Unused leases go back when idle,
when too old, at period rollover, when their budget changes, and on close.
"""

from __future__ import annotations

import builtins
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from orchestra.accounting.budgets.periods import PeriodCache, period_bounds, period_key
from orchestra.accounting.budgets.reservations import (
    HOLD,
    HOLD_DOWN,
    HOLD_DROP_EMPTY,
    RESERVE,
    STATE,
    UNRESERVE,
    BudgetIndex,
    BudgetRow,
    Hold,
    Need,
    Plan,
    Reservation,
    Windows,
)
from orchestra.accounting.money import to_nano
from orchestra.accounting.store import AccountingStore, Clock, db_time

log = logging.getLogger("orchestra.accounting")


def _log_failure(future: Future[Any]) -> None:
    exc = future.exception()
    if exc is not None:
        log.warning("returning a budget lease failed (its hold expires at its TTL): %s", exc)


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """How budget leases are sized and when they go back (see the module docstring)."""

    calls: int = 256
    """A lease covers at most this many estimates of the call that takes it."""
    fraction: int = 8
    """... and at most this fraction (1/n) of the window's headroom at that moment."""
    exact_below: int = 32
    """Headroom under this many estimates: reserve exactly in the database, no lease."""
    max_usd: Decimal | None = None
    """An absolute ceiling on one lease (none by default)."""
    idle_s: float = 2.0
    """A lease unused this long goes back."""
    max_age_s: float = 10.0
    """A lease grants nothing after this long (far under the reservation TTL)."""
    sweep: bool = True
    """Return idle leases from a timer thread (else only via :meth:`Leases.return_idle`,
    on top-ups and at close)."""


@dataclass(slots=True)
class Lease:
    """A block of one budget window's headroom held by this process (in memory)."""

    hold_id: str
    window_id: int
    budget_id: str
    period: str
    free: int
    """Nano-dollars not yet granted to a call."""
    taken_at: datetime
    used_at: datetime
    size: int = 0
    """What the lease reserved when taken."""


@dataclass(slots=True)
class Grants:
    """What the leases gave one call, and what is left for the database to do."""

    granted: builtins.list[tuple[Lease, Hold]] = field(default_factory=list)
    """Amounts granted in memory, from this process's leases."""
    needs: builtins.list[Need] = field(default_factory=list)
    """Windows the call must reserve on in the database."""
    back: builtins.list[tuple[str, int, int]] = field(default_factory=list)
    """Lease remainders to give back first ``(hold id, window id, amount)``."""
    leading: builtins.list[str] = field(default_factory=list)
    """Budgets whose next lease this call takes (ended with :meth:`Leases.install`)."""


class Leases:
    """This process's budget leases: granting from them, taking, returning, expiry."""

    def __init__(
        self,
        policy: LeasePolicy,
        store: AccountingStore,
        windows: Windows,
        *,
        clock: Clock,
        ttl: timedelta,
        index: Callable[[], BudgetIndex],
        after: Callable[[Plan], None],
    ) -> None:
        self.policy = policy
        self._store = store
        self._windows = windows
        self._clock = clock
        self._ttl = ttl
        self._index = index
        self._after = after
        self._live: dict[str, Lease] = {}
        """This process's live lease per budget id (under ``_lock``)."""
        self._lock = threading.Lock()
        self._taking: set[str] = set()
        """Budget ids with a lease take in flight: one at a time per budget."""
        self._sweeper: threading.Thread | None = None
        self._stopping = threading.Event()

    def __bool__(self) -> bool:
        return bool(self._live)

    def grant(
        self, rows: builtins.list[BudgetRow], amount: int, now: datetime, periods: PeriodCache
    ) -> Grants:
        """Grant ``amount`` from each budget's live lease where it can; say what else the
        call must do in the database (and take next leases in the background)."""
        out = Grants()
        prefetch: builtins.list[tuple[BudgetRow, str]] = []
        max_age = timedelta(seconds=self.policy.max_age_s)
        with self._lock:
            for row in rows:
                key, end = periods.current(row.spec.period, now)
                lease = self._live.get(row.id)
                if lease is not None:
                    if (
                        lease.free >= amount
                        and lease.period == key
                        and now - lease.taken_at < max_age
                    ):
                        lease.free -= amount
                        lease.used_at = now
                        hold = Hold(lease.window_id, row.spec.name, amount, lease.hold_id)
                        out.granted.append((lease, hold))
                        if lease.free < lease.size // 4 and row.id not in self._taking:
                            # Running low: the next lease is taken in the background,
                            # so calls rarely find this one empty.
                            self._taking.add(row.id)
                            prefetch.append((row, key))
                        continue
                    # Too small, too old or of a past period: its remainder goes back in a
                    # job queued before this call's, so in the same batch (committed even
                    # if this call is refused) and counted first.
                    out.back.append(self._detach(lease))
                if row.id in self._taking:  # another call is taking the next lease
                    out.needs.append(Need(row, key, end, lease=False))
                else:
                    self._taking.add(row.id)
                    out.leading.append(row.id)
                    out.needs.append(Need(row, key, end))
        for row, key in prefetch:
            self._prefetch(row, key, amount)
        return out

    def take(
        self,
        conn: Connection,
        window_id: int,
        row: BudgetRow,
        need: Need,
        amount: int,
        now: datetime,
    ) -> tuple[Lease, Any] | None:
        """In a reservation job: reserve a lease on the window for calls of ``amount``, the
        first of them granted; ``None`` when the window is in exact mode or it failed."""
        size = self.size(conn, window_id, amount)
        if size is None:
            return None
        got = RESERVE.run(conn, {"amt": size, "id": window_id}).fetchone()
        if got is None:
            return None
        lease_id = "lse_" + uuid.uuid4().hex
        lease = Lease(lease_id, window_id, row.id, need.period, size - amount, now, now, size)
        return lease, got

    def return_idle(self, *, wait: bool = True) -> int:
        """Give back the leases unused for ``idle_s``, too old, or of a past period;
        returns how many. Runs by itself every ``idle_s / 2`` while leases are held."""
        if not self._live:
            return 0
        now = self._clock()
        idle = timedelta(seconds=self.policy.idle_s)
        age = timedelta(seconds=self.policy.max_age_s)
        index = self._index()

        def stale(lease: Lease) -> bool:
            if now - lease.used_at >= idle or now - lease.taken_at >= age:
                return True
            for group in index.values():
                for row in group:
                    if row.id == lease.budget_id:
                        start, _ = period_bounds(row.spec.period, now)
                        return period_key(start) != lease.period
            return True  # its budget is gone

        return self.return_where(stale, wait=wait)

    def close(self) -> None:
        """Give every unused lease back (blocking) and stop the lease timer; idempotent."""
        self._stopping.set()
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None and sweeper is not threading.current_thread():
            sweeper.join(timeout=5)
        self.return_where(lambda lease: True, wait=True)

    def return_where(self, which: Callable[[Lease], bool], *, wait: bool = True) -> int:
        """Give back the leases ``which`` picks; returns how many."""
        with self._lock:
            gone = [lease for lease in self._live.values() if which(lease)]
            back = [self._detach(lease) for lease in gone]
        if not back:
            return 0
        future = self.submit_back(back)
        if wait and future is not None:
            future.result()
        return len(back)

    def _detach(self, lease: Lease) -> tuple[str, int, int]:
        """Stop granting from ``lease`` (call under ``_lock``); what to give back."""
        del self._live[lease.budget_id]
        free, lease.free = lease.free, 0
        return lease.hold_id, lease.window_id, free

    def submit_back(self, back: builtins.list[tuple[str, int, int]]) -> Future[None] | None:
        """Queue the return of lease remainders ``(hold id, window id, amount)``."""

        def job(conn: Connection) -> None:
            for hold_id, window_id, free in sorted(back, key=lambda b: b[1]):
                self._give_back(conn, hold_id, window_id, free)

        try:
            future = self._store.committer.submit(job)
        except RuntimeError:  # the writer is closed: the holds expire at their TTL
            log.warning("budget leases not returned: the accounting writer is closed")
            return None
        future.add_done_callback(_log_failure)
        return future

    @staticmethod
    def _give_back(conn: Connection, hold_id: str, window_id: int, amount: int) -> None:
        """Move ``amount`` out of a lease's hold row and off the window's reserved money,
        if the row still holds it (an expired row was given back by whoever deleted it)."""
        if amount <= 0:
            HOLD_DROP_EMPTY.run(conn, {"rid": hold_id, "wid": window_id})
            return
        got = HOLD_DOWN.run(conn, {"amt": amount, "rid": hold_id, "wid": window_id}).fetchone()
        if got is None:
            return
        UNRESERVE.run(conn, {"amt": amount, "id": window_id})
        if got[0] == 0:
            HOLD_DROP_EMPTY.run(conn, {"rid": hold_id, "wid": window_id})

    def install(self, taken: builtins.list[Lease], leading: builtins.list[str]) -> None:
        """Make leases taken by a committed job grantable, replacing (and giving back the
        rest of) the budget's previous lease; end the takes this caller led."""
        back: builtins.list[tuple[str, int, int]] = []
        with self._lock:
            for lease in taken:
                old = self._live.get(lease.budget_id)
                if old is not None:
                    back.append(self._detach(old))
                self._live[lease.budget_id] = lease
                if self._stopping.is_set():
                    back.append(self._detach(lease))
            self._taking.difference_update(leading)
            if (
                self._sweeper is None
                and self.policy.sweep
                and not self._stopping.is_set()
                and self._live
            ):
                self._sweeper = threading.Thread(
                    target=self._sweep, name="budget-leases", daemon=True
                )
                self._sweeper.start()
        if back:
            self.submit_back(back)

    def _prefetch(self, row: BudgetRow, period: str, amount: int) -> None:
        """Take the budget's next lease in the background, before this one runs out (the
        caller marked the budget as taking)."""
        now = self._clock()
        committer = self._store.committer

        def job(conn: Connection) -> tuple[Lease | None, Plan]:
            plan = Plan()
            window_id = self._windows.window(conn, row, period)
            size = self.size(conn, window_id, amount)
            if size is None:
                return None, plan
            got = RESERVE.run(conn, {"amt": size, "id": window_id}).fetchone()
            if got is None:
                return None, plan
            lease = Lease(
                "lse_" + uuid.uuid4().hex, window_id, row.id, period, size, now, now, size
            )
            exp = db_time(conn, self.expiry(now))
            pending = committer.batch.state.setdefault("holds", [])
            pending.append({"rid": lease.hold_id, "wid": window_id, "amt": size, "exp": exp})
            committer.batch.at_end("holds", lambda c: HOLD.run_many(c, pending))
            self._windows.maybe_alert(conn, window_id, row, got, now, plan)
            return lease, plan

        def done(future: Future[tuple[Lease | None, Plan]]) -> None:
            lease, plan = None, None
            try:
                lease, plan = future.result()
            except Exception as exc:  # the next call that needs a lease takes it itself
                log.warning("taking a budget lease in the background failed: %s", exc)
            self.install([lease] if lease is not None else [], [row.id])
            if plan is not None:
                self._after(plan)

        try:
            committer.submit(job).add_done_callback(done)
        except RuntimeError:  # the writer is closed
            self.install([], [row.id])

    def expiry(self, now: datetime) -> datetime:
        """When a lease's hold row taken ``now`` expires: a little later than a
        reservation's, as its last grant may come ``max_age_s`` after it was taken."""
        return now + self._ttl + timedelta(seconds=self.policy.max_age_s)

    def size(self, conn: Connection, window_id: int, amount: int) -> int | None:
        """How much to lease on the window for calls of ``amount``; ``None``: exact mode."""
        policy = self.policy
        state = STATE.run(conn, {"id": window_id}).fetchone()
        if state is None:
            return None
        spent, reserved, cap = state
        headroom = cap - spent - reserved
        if headroom < policy.exact_below * amount:
            return None
        size = min(headroom // policy.fraction, policy.calls * amount)
        if policy.max_usd is not None:
            size = min(size, to_nano(policy.max_usd))
        return int(max(size, amount))

    def ungrant(self, granted: builtins.list[tuple[Lease, Hold]]) -> None:
        """Undo in-memory grants of a reservation that failed on another budget."""
        if not granted:
            return
        orphans: builtins.list[Hold] = []
        with self._lock:
            for lease, hold in granted:
                if self._live.get(lease.budget_id) is lease:
                    lease.free += hold.amount_nano
                else:  # the lease went back meanwhile: release the amount from its row
                    orphans.append(hold)
        if orphans:
            orphan = Reservation("res_undo", Decimal(0), tuple(orphans))
            try:
                self._store.committer.submit(
                    self._windows.settle_job(orphan, None)
                ).add_done_callback(_log_failure)
            except RuntimeError:
                log.warning("budget lease grant not returned: the accounting writer is closed")

    def _sweep(self) -> None:
        while not self._stopping.wait(max(self.policy.idle_s / 2, 0.05)):
            try:
                self.return_idle(wait=False)
            except Exception:  # never let the timer die; the next pass retries
                log.exception("returning idle budget leases failed")
            with self._lock:
                if not self._live:
                    self._sweeper = None
                    return
