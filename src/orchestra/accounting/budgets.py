"""Dollar budgets: hard caps enforced by reserving before a call, settling after.

**Invariant.** A reservation is granted only if, atomically in the database,
``spent + reserved + estimate <= cap`` on every budget the call falls under; so at any
moment the spend of a budget can exceed its cap only by what calls in flight cost beyond
their estimates. The check is one conditional ``UPDATE`` per budget window, run in a write
transaction (``BEGIN IMMEDIATE`` on SQLite, row locks on PostgreSQL), so it holds across
threads, processes and gateway workers sharing the database.

**Periods** are calendar-aligned in UTC: a day starts at 00:00 UTC, a week on Monday
00:00 UTC (ISO weeks), a month on the 1st at 00:00 UTC. A ``run`` budget has no period.

**Free models** never touch a budget: a zero estimate reserves nothing and is never
refused. No key, admin or not, skips this check: there is no bypass parameter.

**Leases** (optional, :class:`LeasePolicy`) amortise that transaction. A process reserves
a block of a window's headroom with the same conditional ``UPDATE`` (so the block counts
as reserved in the database and the invariant above keeps holding across processes),
recorded as a hold row like a reservation's, and grants per-call reservations from it in
memory. Settling a leased call moves its estimate out of the lease's hold row and the
window's reserved amount into spent; whoever removes an amount from a hold row gives it
back, so an expired lease is never returned twice. Near the cap (headroom under
``exact_below`` estimates) every call is reserved exactly, and a call is refused only when
that exact reservation fails. Unused leases go back when idle, when too old, at period
rollover, when their budget changes, and on :meth:`BudgetBook.close`.
"""

from __future__ import annotations

import asyncio
import builtins
import itertools
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from sqlalchemy import Connection, delete, select, update

from orchestra.accounting.alerts import BudgetAlert, BudgetAlerts
from orchestra.accounting.attribution import Attribution, PerAttribution
from orchestra.accounting.audit import AuditLog
from orchestra.accounting.errors import BudgetExceeded, BudgetNotFound, InvalidBudget
from orchestra.accounting.money import fmt_usd, from_nano, to_nano
from orchestra.accounting.store import AccountingStore, Clock, Statement, as_utc, db_time, utcnow
from orchestra.store import Database

if TYPE_CHECKING:
    from orchestra.config.gateway import BudgetConfig
from orchestra.store.tables.gateway import (
    GatewayBudget,
    GatewayBudgetWindow,
    GatewayReservationHold,
)

Scope = Literal["developer", "team", "org", "run"]
Period = Literal["day", "week", "month", "none"]
SCOPES: tuple[str, ...] = get_args(Scope)
PERIODS: tuple[str, ...] = get_args(Period)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,199}$")
log = logging.getLogger("orchestra.accounting")


def _log_failure(future: Future[Any]) -> None:
    exc = future.exception()
    if exc is not None:
        log.warning("returning a budget lease failed (its hold expires at its TTL): %s", exc)


# The hot path uses fixed SQL text: no statement building or cache-key work per call.
_RESERVE = Statement(
    "UPDATE gateway_budget_windows SET reserved_nano = reserved_nano + :amt "
    "WHERE id = :id AND spent_nano + reserved_nano + :amt <= cap_nano "
    "RETURNING spent_nano, reserved_nano, alerted, period_start"
)
_UNRESERVE = Statement(
    "UPDATE gateway_budget_windows SET reserved_nano = reserved_nano - :amt WHERE id = :id"
)
_STATE = Statement(
    "SELECT spent_nano, reserved_nano, cap_nano FROM gateway_budget_windows WHERE id = :id"
)
_HOLD = Statement(
    "INSERT INTO gateway_reservation_holds (reservation_id, window_id, amount_nano, expires_at) "
    "VALUES (:rid, :wid, :amt, :exp)"
)
_SETTLE = Statement(
    "UPDATE gateway_budget_windows SET reserved_nano = reserved_nano - :back, "
    "spent_nano = spent_nano + :actual WHERE id = :id "
    "RETURNING spent_nano, reserved_nano, alerted, period_start"
)
_HOLD_DOWN = Statement(
    "UPDATE gateway_reservation_holds SET amount_nano = amount_nano - :amt "
    "WHERE reservation_id = :rid AND window_id = :wid AND amount_nano >= :amt "
    "RETURNING amount_nano"
)
_HOLD_DROP = Statement(
    "DELETE FROM gateway_reservation_holds WHERE reservation_id = :rid AND window_id = :wid "
    "RETURNING amount_nano"
)
_HOLD_DROP_EMPTY = Statement(
    "DELETE FROM gateway_reservation_holds "
    "WHERE reservation_id = :rid AND window_id = :wid AND amount_nano = 0"
)
_MARK = Statement(
    "UPDATE gateway_budget_windows SET alerted = :yes WHERE id = :id AND alerted = :no"
)


def period_bounds(period: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    """``(start, end)`` of the UTC calendar period containing ``now``; ``(None, None)`` for none."""
    now = as_utc(now)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return start, end
    return None, None


def _period_key(start: datetime | None) -> str:
    return start.strftime("%Y-%m-%dT%H:%M:%SZ") if start is not None else "all"


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    """A budget definition."""

    name: str
    scope: Scope
    """``developer``, ``team`` (a squad, tribe or division by name), ``org`` or ``run``."""
    subject: str
    """Developer name, team unit name, organisation name (``*`` for every call), or run id."""
    cap_usd: Decimal
    period: Period = "month"
    """``day``, ``week``, ``month`` (UTC calendar), or ``none`` (required for ``run``)."""
    soft_pct: int | None = 80
    """Alert once per period when spend plus reservations reach this percentage."""

    def validated(self) -> BudgetSpec:
        """This spec, checked; raises :class:`InvalidBudget` with a fix."""
        if not _NAME_RE.match(self.name):
            raise InvalidBudget(
                f"invalid budget name {self.name!r}", hint="use letters, digits and - _ . : @ /"
            )
        if self.scope not in SCOPES:
            raise InvalidBudget(
                f"unknown budget scope {self.scope!r}", hint=f"use one of {', '.join(SCOPES)}"
            )
        if self.period not in PERIODS:
            raise InvalidBudget(
                f"unknown budget period {self.period!r}", hint=f"use one of {', '.join(PERIODS)}"
            )
        if self.scope == "run" and self.period != "none":
            raise InvalidBudget("a run budget has no period", hint="use period none for scope run")
        if not self.subject.strip():
            raise InvalidBudget(
                "a budget needs a subject", hint="name the developer, team, org or run id"
            )
        cap = Decimal(self.cap_usd)
        if not cap.is_finite() or cap < 0:
            raise InvalidBudget(
                f"budget cap {self.cap_usd} must be zero or more dollars", hint="e.g. 100"
            )
        if self.soft_pct is not None and not 1 <= self.soft_pct <= 100:
            raise InvalidBudget(
                f"soft threshold {self.soft_pct}% must be 1-100", hint="e.g. 80, or none"
            )
        return self


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
    """Return idle leases from a timer thread (else only via :meth:`BudgetBook.return_idle`,
    on top-ups and at close)."""


@dataclass(frozen=True, slots=True)
class Hold:
    """The part of a reservation held on one budget window."""

    window_id: int
    budget_name: str
    amount_nano: int
    lease: str | None = None
    """The lease hold row this amount was granted from; ``None``: its own hold row."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money held for one call until it is settled, released or expires."""

    id: str
    estimate_usd: Decimal
    holds: tuple[Hold, ...] = ()
    created_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def empty(self) -> bool:
        """True when no budget applied (or the call is free): nothing to settle."""
        return not self.holds

    def as_json(self) -> dict[str, Any]:
        """A journal form: ``holds`` are ``[window, budget, amount]``, plus the lease id
        for a leased hold (readers of the three-element form settle a leased hold without
        touching its lease, whose row then gives the estimate back when it expires)."""
        return {
            "id": self.id,
            "estimate": str(self.estimate_usd),
            "holds": [
                [h.window_id, h.budget_name, h.amount_nano]
                if h.lease is None
                else [h.window_id, h.budget_name, h.amount_nano, h.lease]
                for h in self.holds
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reservation:
        """The reservation :meth:`as_json` describes (the three-element form too)."""
        return cls(
            str(data["id"]),
            Decimal(data["estimate"]),
            tuple(
                Hold(int(h[0]), str(h[1]), int(h[2]), str(h[3]) if len(h) > 3 else None)
                for h in data["holds"]
            ),
        )


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A budget and its current period."""

    spec: BudgetSpec
    period_start: datetime | None
    resets_at: datetime | None
    spent_usd: Decimal
    reserved_usd: Decimal
    alerted: bool

    @property
    def remaining_usd(self) -> Decimal:
        return self.spec.cap_usd - self.spent_usd - self.reserved_usd


@dataclass
class _Row:
    id: str
    spec: BudgetSpec


@dataclass
class _Plan:
    alerts: list[BudgetAlert] = field(default_factory=list)


@dataclass(slots=True)
class _Lease:
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
class _Need:
    """A window a reservation job must reserve on in the database."""

    row: _Row
    period: str
    end: datetime | None
    lease: bool = True
    """May take a lease (else: reserve exactly; a lease take is already in flight)."""


_ReserveJob = Callable[[Connection], tuple[Reservation, _Plan, list[_Lease]]]


def _spec(row: GatewayBudget) -> BudgetSpec:
    return BudgetSpec(
        name=row.name,
        scope=cast(Scope, row.scope),
        subject=row.subject,
        cap_usd=from_nano(row.cap_nano),
        period=cast(Period, row.period),
        soft_pct=row.soft_pct,
    )


def _insert_ignore(conn: Connection, values: dict[str, object]) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(GatewayBudgetWindow).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(GatewayBudgetWindow).values(**values).on_conflict_do_nothing())


class BudgetBook:
    """Define budgets; reserve, settle and release money for calls."""

    def __init__(
        self,
        db: Database | AccountingStore,
        *,
        audit: AuditLog | None = None,
        alerts: BudgetAlerts | None = None,
        clock: Clock = utcnow,
        reservation_ttl: timedelta = timedelta(minutes=15),
        refresh_s: float = 2.0,
        expire_every_s: float = 30.0,
        leases: LeasePolicy | None = None,
    ) -> None:
        self._store = AccountingStore.of(db)
        self._audit = audit if audit is not None else AuditLog(self._store, clock=clock)
        self.alerts = alerts if alerts is not None else BudgetAlerts()
        self._clock = clock
        self._ttl = reservation_ttl
        self._refresh_s = refresh_s
        self._expire_every = expire_every_s
        self._next_expire = 0.0
        self._lock = threading.Lock()
        self._budgets: dict[tuple[str, str], builtins.list[_Row]] = {}
        self._matched = PerAttribution(self._match)
        """:meth:`_match` per attribution, until the definitions are re-read."""
        self._loaded_at = -1e18
        self._windows: dict[tuple[str, str], int] = {}
        self._periods: dict[str, tuple[datetime | None, datetime | None, str]] = {}
        # Reservation ids: unique across processes (the random part) and cheap per call.
        self._id_prefix = uuid.uuid4().hex[:20]
        self._ids = itertools.count()
        self._policy = leases
        self._leases: dict[str, _Lease] = {}
        """This process's live lease per budget id (under ``_lease_lock``)."""
        self._lease_lock = threading.Lock()
        self._taking: set[str] = set()
        """Budget ids with a lease take in flight: one at a time per budget."""
        self._sweeper: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- definitions ---------------------------------------------------------------

    def _load(self, *, force: bool = False) -> dict[tuple[str, str], builtins.list[_Row]]:
        """Budget definitions by (scope, subject), re-read every ``refresh_s`` seconds.

        Budgets defined by another process (the CLI, another worker) apply within that
        delay; ones defined through this book apply at once.
        """
        now = time.monotonic()
        if not force and now - self._loaded_at < self._refresh_s:
            return self._budgets
        with self._store.db.session() as session:
            rows = session.scalars(select(GatewayBudget)).all()
            index: dict[tuple[str, str], builtins.list[_Row]] = {}
            for row in rows:
                index.setdefault((row.scope, row.subject), []).append(_Row(row.id, _spec(row)))
        with self._lock:
            before = {r.id: r.spec for group in self._budgets.values() for r in group}
            self._budgets = index
            self._loaded_at = now
        if self._leases:
            after = {r.id: r.spec for group in index.values() for r in group}
            changed = {bid for bid, spec in before.items() if after.get(bid) != spec}
            if changed:  # a budget removed or redefined: its leases go back at once
                self._return_leases(lambda lease: lease.budget_id in changed, wait=force)
        return index

    def define(self, spec: BudgetSpec, *, actor: str = "system", source: str = "api") -> None:
        """Create or replace the budget named ``spec.name`` (audited)."""
        spec = spec.validated()
        cap = to_nano(spec.cap_usd)
        with self._store.db.session() as session:
            row = session.scalars(
                select(GatewayBudget).where(GatewayBudget.name == spec.name)
            ).first()
            if row is None:
                session.add(
                    GatewayBudget(
                        id="bud_" + uuid.uuid4().hex[:16],
                        name=spec.name,
                        scope=spec.scope,
                        subject=spec.subject,
                        period=spec.period,
                        cap_nano=cap,
                        soft_pct=spec.soft_pct,
                        source=source,
                        created_at=self._clock(),
                    )
                )
            else:
                row.scope, row.subject, row.period = spec.scope, spec.subject, spec.period
                row.cap_nano, row.soft_pct, row.source = cap, spec.soft_pct, source
                session.execute(
                    update(GatewayBudgetWindow)
                    .where(GatewayBudgetWindow.budget_id == row.id)
                    .values(cap_nano=cap)
                )
        self._load(force=True)
        self._audit.append(
            actor,
            "budget.set",
            spec.name,
            {
                "scope": spec.scope,
                "subject": spec.subject,
                "period": spec.period,
                "cap_usd": str(spec.cap_usd),
                "soft_pct": spec.soft_pct,
                "source": source,
            },
        )

    def remove(self, name: str, *, actor: str = "system") -> None:
        """Delete a budget and its period records (audited)."""
        with self._store.db.session() as session:
            row = session.scalars(select(GatewayBudget).where(GatewayBudget.name == name)).first()
            if row is None:
                raise BudgetNotFound(
                    f"no budget named {name!r}", hint="see `orchestra budgets list`"
                )
            session.execute(
                delete(GatewayBudgetWindow).where(GatewayBudgetWindow.budget_id == row.id)
            )
            session.delete(row)
        self._load(force=True)
        self._audit.append(actor, "budget.remove", name, {})

    def sync(self, specs: Iterable[BudgetSpec], *, actor: str = "config") -> int:
        """Make the config-sourced budgets equal ``specs``; returns the number of changes."""
        wanted = {s.name: s.validated() for s in specs}
        with self._store.db.session() as session:
            rows = {r.name: r for r in session.scalars(select(GatewayBudget))}
        changes = 0
        for name, spec in wanted.items():
            row = rows.get(name)
            if row is None or _spec(row) != spec or row.source != "config":
                self.define(spec, actor=actor, source="config")
                changes += 1
        for name, row in rows.items():
            if row.source == "config" and name not in wanted:
                self.remove(name, actor=actor)
                changes += 1
        return changes

    def list(self) -> builtins.list[BudgetSpec]:
        """Every budget, by name."""
        rows = self._load(force=True)
        return sorted((r.spec for group in rows.values() for r in group), key=lambda s: s.name)

    def status(self, name: str | None = None) -> builtins.list[BudgetStatus]:
        """Each budget (or only ``name``) with its current period's spend and reservations."""
        now = self._clock()
        out: builtins.list[BudgetStatus] = []
        with self._store.db.session() as session:
            query = select(GatewayBudget).order_by(GatewayBudget.name)
            if name is not None:
                query = query.where(GatewayBudget.name == name)
            budgets = session.scalars(query).all()
            if name is not None and not budgets:
                raise BudgetNotFound(
                    f"no budget named {name!r}", hint="see `orchestra budgets list`"
                )
            for b in budgets:
                start, end = period_bounds(b.period, now)
                w = session.scalars(
                    select(GatewayBudgetWindow).where(
                        GatewayBudgetWindow.budget_id == b.id,
                        GatewayBudgetWindow.period_start == _period_key(start),
                    )
                ).first()
                out.append(
                    BudgetStatus(
                        _spec(b),
                        start,
                        end,
                        from_nano(w.spent_nano if w else 0),
                        from_nano(w.reserved_nano if w else 0),
                        bool(w.alerted) if w else False,
                    )
                )
        return out

    # -- the hot path --------------------------------------------------------------

    def applicable(self, attribution: Attribution) -> builtins.list[BudgetSpec]:
        """The budgets a call with ``attribution`` is charged against."""
        return [r.spec for r in self._matching(attribution)]

    def _matching(self, a: Attribution) -> builtins.list[_Row]:
        """The rows of :meth:`applicable`, remembered per attribution until the definitions
        are re-read (the same few callers make every request). Not to be changed."""
        return self._matched.get(self._load(), a)

    @staticmethod
    def _match(
        index: dict[tuple[str, str], builtins.list[_Row]], a: Attribution
    ) -> builtins.list[_Row]:
        keys: builtins.list[tuple[str, str]] = [("org", "*")]
        if a.developer:
            keys.append(("developer", a.developer))
        keys.extend(("team", t) for t in a.teams)
        if a.org:
            keys.append(("org", a.org))
        if a.run_id:
            keys.append(("run", a.run_id))
        return [row for k in keys for row in index.get(k, ())]

    def reserve(self, attribution: Attribution, model: str, estimate_usd: Decimal) -> Reservation:
        """Hold ``estimate_usd`` on every applicable budget, or raise :class:`BudgetExceeded`.

        ``model`` is for messages only; a zero estimate (a free model) reserves nothing.
        """
        prepared = self._prepare(attribution, estimate_usd)
        if isinstance(prepared, Reservation):
            return prepared
        job, granted, _, leading = prepared
        try:
            reservation, plan, taken = self._store.committer.run(job)
        except BaseException:
            self._ungrant(granted)
            self._install([], leading)
            raise
        self._install(taken, leading)
        self._after(plan)
        return reservation

    async def areserve(
        self, attribution: Attribution, model: str, estimate_usd: Decimal
    ) -> Reservation:
        """:meth:`reserve` without blocking the event loop."""
        if time.monotonic() - self._loaded_at >= self._refresh_s:
            await asyncio.to_thread(self._load)  # the periodic re-read of definitions
        prepared = self._prepare(attribution, estimate_usd)
        if isinstance(prepared, Reservation):
            return prepared
        job, granted, queued, leading = prepared
        try:
            # On SQLite, when nothing else is writing, reserving right here (one short
            # transaction that never waits for a lock) is cheaper than two thread hand-offs.
            # Not when a lease's remainder was queued to go back first.
            outcome, result = ("busy", None) if queued else self._store.committer.try_inline(job)
            if outcome == "done" and result is not None:
                reservation, plan, taken = result
            else:
                if outcome == "rolled_back":
                    self._windows.clear()  # window ids cached by the rolled-back transaction
                reservation, plan, taken = await self._store.committer.arun(job)
        except BaseException:
            self._ungrant(granted)
            self._install([], leading)
            raise
        self._install(taken, leading)
        self._after(plan)
        return reservation

    def settle(self, reservation: Reservation, actual_usd: Decimal) -> None:
        """Turn the hold into spend of ``actual_usd`` (which may exceed the estimate)."""
        if reservation.empty:
            return
        self._after(self._store.committer.run(self.settle_job(reservation, actual_usd)))

    async def asettle(self, reservation: Reservation, actual_usd: Decimal) -> None:
        """:meth:`settle` without blocking the event loop."""
        if reservation.empty:
            return
        self._after(await self._store.committer.arun(self.settle_job(reservation, actual_usd)))

    def release(self, reservation: Reservation) -> None:
        """Give the hold back (the call failed before costing anything)."""
        if not reservation.empty:
            self._store.committer.run(self.settle_job(reservation, None))

    async def arelease(self, reservation: Reservation) -> None:
        """:meth:`release` without blocking the event loop."""
        if not reservation.empty:
            await self._store.committer.arun(self.settle_job(reservation, None))

    def expire_stale(self, now: datetime | None = None) -> int:
        """Release holds older than the reservation TTL (their callers died); returns how many."""
        when = now or self._clock()

        def job(conn: Connection) -> int:
            return self._expire_in(conn, when)

        return self._store.committer.run(job)

    # -- leases --------------------------------------------------------------------

    def return_idle(self, *, wait: bool = True) -> int:
        """Give back the leases unused for ``idle_s``, too old, or of a past period;
        returns how many. Runs by itself every ``idle_s / 2`` while leases are held."""
        policy = self._policy
        if policy is None or not self._leases:
            return 0
        now = self._clock()
        idle = timedelta(seconds=policy.idle_s)
        age = timedelta(seconds=policy.max_age_s)

        def stale(lease: _Lease) -> bool:
            if now - lease.used_at >= idle or now - lease.taken_at >= age:
                return True
            for group in self._budgets.values():
                for row in group:
                    if row.id == lease.budget_id:
                        start, _ = period_bounds(row.spec.period, now)
                        return _period_key(start) != lease.period
            return True  # its budget is gone

        return self._return_leases(stale, wait=wait)

    def close(self) -> None:
        """Give every unused lease back (blocking) and stop the lease timer; idempotent.

        Call before closing the store. Reservations already granted stay valid: their
        settlement moves their estimates out of the lease's hold row as usual."""
        self._stopping.set()
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None and sweeper is not threading.current_thread():
            sweeper.join(timeout=5)
        self._return_leases(lambda lease: True, wait=True)

    def _return_leases(self, which: Callable[[_Lease], bool], *, wait: bool = True) -> int:
        with self._lease_lock:
            gone = [lease for lease in self._leases.values() if which(lease)]
            back = [self._detach(lease) for lease in gone]
        if not back:
            return 0
        future = self._submit_back(back)
        if wait and future is not None:
            future.result()
        return len(back)

    def _detach(self, lease: _Lease) -> tuple[str, int, int]:
        """Stop granting from ``lease`` (call under ``_lease_lock``); what to give back."""
        del self._leases[lease.budget_id]
        free, lease.free = lease.free, 0
        return lease.hold_id, lease.window_id, free

    def _submit_back(self, back: builtins.list[tuple[str, int, int]]) -> Future[None] | None:
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
            _HOLD_DROP_EMPTY.run(conn, {"rid": hold_id, "wid": window_id})
            return
        got = _HOLD_DOWN.run(conn, {"amt": amount, "rid": hold_id, "wid": window_id}).fetchone()
        if got is None:
            return
        _UNRESERVE.run(conn, {"amt": amount, "id": window_id})
        if got[0] == 0:
            _HOLD_DROP_EMPTY.run(conn, {"rid": hold_id, "wid": window_id})

    def _install(self, taken: builtins.list[_Lease], leading: builtins.list[str]) -> None:
        """Make leases taken by a committed job grantable, replacing (and giving back the
        rest of) the budget's previous lease; end the takes this caller led."""
        back: builtins.list[tuple[str, int, int]] = []
        with self._lease_lock:
            for lease in taken:
                old = self._leases.get(lease.budget_id)
                if old is not None:
                    back.append(self._detach(old))
                self._leases[lease.budget_id] = lease
                if self._stopping.is_set():
                    back.append(self._detach(lease))
            self._taking.difference_update(leading)
            policy = self._policy
            if (
                self._sweeper is None
                and policy is not None
                and policy.sweep
                and not self._stopping.is_set()
                and self._leases
            ):
                self._sweeper = threading.Thread(
                    target=self._sweep, name="budget-leases", daemon=True
                )
                self._sweeper.start()
        if back:
            self._submit_back(back)

    def _prefetch(self, row: _Row, period: str, amount: int) -> None:
        """Take the budget's next lease in the background, before this one runs out (the
        caller marked the budget as taking)."""
        now = self._clock()
        committer = self._store.committer

        def job(conn: Connection) -> tuple[_Lease | None, _Plan]:
            plan = _Plan()
            window_id = self._window(conn, row, period)
            size = self._lease_size(conn, window_id, amount)
            if size is None:
                return None, plan
            got = _RESERVE.run(conn, {"amt": size, "id": window_id}).fetchone()
            if got is None:
                return None, plan
            lease = _Lease(
                "lse_" + uuid.uuid4().hex, window_id, row.id, period, size, now, now, size
            )
            exp = db_time(conn, self._lease_expiry(now))
            pending = committer.batch.state.setdefault("holds", [])
            pending.append({"rid": lease.hold_id, "wid": window_id, "amt": size, "exp": exp})
            committer.batch.at_end("holds", lambda c: _HOLD.run_many(c, pending))
            self._maybe_alert(conn, window_id, row, got, now, plan)
            return lease, plan

        def done(future: Future[tuple[_Lease | None, _Plan]]) -> None:
            lease, plan = None, None
            try:
                lease, plan = future.result()
            except Exception as exc:  # the next call that needs a lease takes it itself
                log.warning("taking a budget lease in the background failed: %s", exc)
            self._install([lease] if lease is not None else [], [row.id])
            if plan is not None:
                self._after(plan)

        try:
            committer.submit(job).add_done_callback(done)
        except RuntimeError:  # the writer is closed
            self._install([], [row.id])

    def _lease_expiry(self, now: datetime) -> datetime:
        # A lease's row lives a little longer than a reservation's: its last grant may
        # come ``max_age_s`` after it was taken.
        policy = self._policy
        extra = policy.max_age_s if policy is not None else 0.0
        return now + self._ttl + timedelta(seconds=extra)

    def _lease_size(self, conn: Connection, window_id: int, amount: int) -> int | None:
        """How much to lease on the window for calls of ``amount``; ``None``: exact mode."""
        policy = self._policy
        state = _STATE.run(conn, {"id": window_id}).fetchone()
        if policy is None or state is None:
            return None
        spent, reserved, cap = state
        headroom = cap - spent - reserved
        if headroom < policy.exact_below * amount:
            return None
        size = min(headroom // policy.fraction, policy.calls * amount)
        if policy.max_usd is not None:
            size = min(size, to_nano(policy.max_usd))
        return int(max(size, amount))

    def _ungrant(self, granted: builtins.list[tuple[_Lease, Hold]]) -> None:
        """Undo in-memory grants of a reservation that failed on another budget."""
        if not granted:
            return
        orphans: builtins.list[Hold] = []
        with self._lease_lock:
            for lease, hold in granted:
                if self._leases.get(lease.budget_id) is lease:
                    lease.free += hold.amount_nano
                else:  # the lease went back meanwhile: release the amount from its row
                    orphans.append(hold)
        if orphans:
            orphan = Reservation("res_undo", Decimal(0), tuple(orphans))
            try:
                self._store.committer.submit(self.settle_job(orphan, None)).add_done_callback(
                    _log_failure
                )
            except RuntimeError:
                log.warning("budget lease grant not returned: the accounting writer is closed")

    def _sweep(self) -> None:
        policy = self._policy
        assert policy is not None
        while not self._stopping.wait(max(policy.idle_s / 2, 0.05)):
            try:
                self.return_idle(wait=False)
            except Exception:  # never let the timer die; the next pass retries
                log.exception("returning idle budget leases failed")
            with self._lease_lock:
                if not self._leases:
                    self._sweeper = None
                    return

    # -- jobs run on the writer thread ---------------------------------------------

    def _prepare(
        self, attribution: Attribution, estimate_usd: Decimal
    ) -> (
        Reservation
        | tuple[_ReserveJob, builtins.list[tuple[_Lease, Hold]], bool, builtins.list[str]]
    ):
        """The reservation itself when leases cover every budget (or none applies), else
        the database job for the rest, the in-memory grants made so far, whether a lease
        remainder was queued to go back first, and the budgets whose lease take this call
        leads (to end with :meth:`_install`)."""
        amount = to_nano(estimate_usd)
        if amount <= 0:
            return Reservation(id="res_free", estimate_usd=Decimal(estimate_usd))
        rows = self._matching(attribution)
        if not rows:
            return Reservation(id="res_free", estimate_usd=Decimal(estimate_usd))
        now = self._clock()
        res_id = f"res_{self._id_prefix}{next(self._ids):x}"
        expires = now + self._ttl
        needs: builtins.list[_Need] = []
        granted: builtins.list[tuple[_Lease, Hold]] = []
        back: builtins.list[tuple[str, int, int]] = []
        leading: builtins.list[str] = []
        prefetch: builtins.list[tuple[_Row, str]] = []
        policy = self._policy
        if policy is None:
            for row in rows:
                key, end = self._period(row.spec.period, now)
                needs.append(_Need(row, key, end))
        else:
            max_age = timedelta(seconds=policy.max_age_s)
            with self._lease_lock:
                for row in rows:
                    key, end = self._period(row.spec.period, now)
                    lease = self._leases.get(row.id)
                    if lease is not None:
                        if (
                            lease.free >= amount
                            and lease.period == key
                            and now - lease.taken_at < max_age
                        ):
                            lease.free -= amount
                            lease.used_at = now
                            hold = Hold(lease.window_id, row.spec.name, amount, lease.hold_id)
                            granted.append((lease, hold))
                            if lease.free < lease.size // 4 and row.id not in self._taking:
                                # Running low: the next lease is taken in the background,
                                # so calls rarely find this one empty.
                                self._taking.add(row.id)
                                prefetch.append((row, key))
                            continue
                        # Too small, too old or of a past period: its remainder goes
                        # back in a job queued before this call's, so in the same batch
                        # (committed even if this call is refused) and counted first.
                        back.append(self._detach(lease))
                    if row.id in self._taking:  # another call is taking the next lease
                        needs.append(_Need(row, key, end, lease=False))
                    else:
                        self._taking.add(row.id)
                        leading.append(row.id)
                        needs.append(_Need(row, key, end))
            for row, key in prefetch:
                self._prefetch(row, key, amount)
            if not needs:
                holds = tuple(hold for _, hold in granted)
                return Reservation(res_id, Decimal(estimate_usd), holds, now, expires)
        if back:
            self._submit_back(back)
        job = self._reserve_job(res_id, amount, estimate_usd, needs, granted, now)
        return job, granted, bool(back), leading

    def _period(self, period: str, now: datetime) -> tuple[str, datetime | None]:
        """The key and end of the period containing ``now`` (cached while it lasts)."""
        cached = self._periods.get(period)
        if cached is not None:
            start, end, key = cached
            if start is None or end is None or start <= now < end:
                return key, end
        start, end = period_bounds(period, now)
        self._periods[period] = (start, end, _period_key(start))
        return _period_key(start), end

    def _reserve_job(
        self,
        res_id: str,
        amount: int,
        estimate_usd: Decimal,
        needs: builtins.list[_Need],
        granted: builtins.list[tuple[_Lease, Hold]],
        now: datetime,
    ) -> _ReserveJob:
        expires = now + self._ttl
        if time.monotonic() >= self._next_expire:
            self._next_expire = time.monotonic() + self._expire_every
            expire_due = True
        else:
            expire_due = False
        policy = self._policy
        committer = self._store.committer

        def job(conn: Connection) -> tuple[Reservation, _Plan, builtins.list[_Lease]]:
            if expire_due:
                self._expire_in(conn, now)
            steps = [(self._window(conn, need.row, need.period), need) for need in needs]
            steps.sort(key=lambda t: t[0])  # one lock order everywhere: no deadlocks
            done: builtins.list[tuple[int, int]] = []  # (window id, amount reserved)
            holds: builtins.list[Hold] = []
            rows_out: builtins.list[dict[str, Any]] = []
            taken: builtins.list[_Lease] = []
            states: builtins.list[tuple[int, _Row, Any]] = []
            for window_id, need in steps:
                row = need.row
                got = None
                if policy is not None and need.lease:
                    size = self._lease_size(conn, window_id, amount)
                    if size is not None:
                        got = _RESERVE.run(conn, {"amt": size, "id": window_id}).fetchone()
                        if got is not None:
                            lease_id = "lse_" + uuid.uuid4().hex
                            done.append((window_id, size))
                            holds.append(Hold(window_id, row.spec.name, amount, lease_id))
                            rows_out.append(
                                {"rid": lease_id, "wid": window_id, "amt": size, "exp": None}
                            )
                            taken.append(
                                _Lease(
                                    lease_id,
                                    window_id,
                                    row.id,
                                    need.period,
                                    size - amount,
                                    now,
                                    now,
                                    size,
                                )
                            )
                            states.append((window_id, row, got))
                            continue
                got = _RESERVE.run(conn, {"amt": amount, "id": window_id}).fetchone()
                if got is None:
                    state = _STATE.run(conn, {"id": window_id}).fetchone()
                    if state is None:  # the budget was removed meanwhile: it no longer applies
                        self._windows.clear()
                        continue
                    for undo, amt in done:
                        _UNRESERVE.run(conn, {"amt": amt, "id": undo})
                    spent, reserved, cap = state
                    raise BudgetExceeded(
                        row.spec.name,
                        cap_usd=fmt_usd(from_nano(cap)),
                        spent_usd=fmt_usd(from_nano(spent)),
                        reserved_usd=fmt_usd(from_nano(reserved)),
                        requested_usd=fmt_usd(from_nano(amount)),
                        resets_at=need.end,
                        now=now,
                    )
                done.append((window_id, amount))
                holds.append(Hold(window_id, row.spec.name, amount))
                rows_out.append({"rid": res_id, "wid": window_id, "amt": amount, "exp": None})
                states.append((window_id, row, got))
            # The window rows already carry the amounts; the hold rows (for expiry) of the
            # whole batch go in with one multi-row INSERT just before the commit.
            exp = db_time(conn, expires)
            exp_lease = db_time(conn, self._lease_expiry(now))
            for r in rows_out:
                r["exp"] = exp if r["rid"] == res_id else exp_lease
            batch = committer.batch
            pending = batch.state.setdefault("holds", [])
            pending.extend(rows_out)
            batch.at_end("holds", lambda c: _HOLD.run_many(c, pending))
            plan = _Plan()
            for window_id, row, got in states:
                self._maybe_alert(conn, window_id, row, got, now, plan)
            all_holds = tuple(holds) + tuple(hold for _, hold in granted)
            reservation = Reservation(res_id, Decimal(estimate_usd), all_holds, now, expires)
            return reservation, plan, taken

        return job

    def _window(self, conn: Connection, row: _Row, key: str) -> int:
        cached = self._windows.get((row.id, key))
        if cached is not None:
            return cached
        _insert_ignore(
            conn,
            {
                "budget_id": row.id,
                "period_start": key,
                "cap_nano": to_nano(row.spec.cap_usd),
                "spent_nano": 0,
                "reserved_nano": 0,
                "alerted": False,
            },
        )
        window_id = conn.execute(
            select(GatewayBudgetWindow.id).where(
                GatewayBudgetWindow.budget_id == row.id, GatewayBudgetWindow.period_start == key
            )
        ).scalar_one()
        if len(self._windows) > 100_000:
            self._windows.clear()
        self._windows[(row.id, key)] = window_id
        return int(window_id)

    def _expire_in(self, conn: Connection, now: datetime) -> int:
        stale = conn.execute(
            select(GatewayReservationHold.reservation_id, GatewayReservationHold.window_id)
            .where(GatewayReservationHold.expires_at < now)
            .order_by(GatewayReservationHold.window_id)
        ).all()
        count = 0
        for res_id, window_id in stale:
            # Whoever deletes the hold row (settle, release or expiry) gives back what it
            # holds then (a lease's row shrinks as its calls settle), so never twice.
            got = _HOLD_DROP.run(conn, {"rid": res_id, "wid": window_id}).fetchone()
            if got is not None:
                if got[0]:
                    _UNRESERVE.run(conn, {"amt": got[0], "id": window_id})
                count += 1
        return count

    def settle_job(
        self, reservation: Reservation, actual_usd: Decimal | None
    ) -> Callable[[Connection], _Plan]:
        """The database work of settling (``actual_usd``) or releasing (``None``) a reservation.

        Exposed so the ledger can settle in the same transaction as it appends the entry.
        The settlements of one batch are applied together at its end: one ``DELETE`` of
        their holds and one ``UPDATE`` per budget window touched, whatever their number.
        """
        actual = to_nano(actual_usd) if actual_usd is not None else 0

        def job(conn: Connection) -> _Plan:
            plan = _Plan()
            self.settle_in_batch(((reservation, actual),), plan)
            return plan

        return job

    def settle_in_batch(self, settlements: Iterable[tuple[Reservation, int]], plan: _Plan) -> None:
        """Settle each ``(reservation, actual nano-dollars)`` in the write batch now running
        (call only from a job on the writer thread): applied together at the batch's end,
        with every other settlement of the batch. Alerts crossed go into ``plan``."""
        batch = self._store.committer.batch
        pending: builtins.list[tuple[Reservation, int, _Plan]] | None = batch.state.get(
            "settlements"
        )
        if pending is None:
            pending = batch.state["settlements"] = []
            batch.at_end("settlements", lambda c: self._settle_all(c, pending))
        pending.extend((reservation, actual, plan) for reservation, actual in settlements)

    def _settle_all(
        self, conn: Connection, pending: builtins.list[tuple[Reservation, int, _Plan]]
    ) -> None:
        now = self._clock()
        deltas: dict[int, builtins.list[int]] = {}
        first_plan: dict[int, _Plan] = {}
        names: dict[int, str] = {}
        leased: dict[tuple[str, int], int] = {}
        own: builtins.list[tuple[str, int, int]] = []
        """Holds with their own row: (reservation id, window id, amount)."""
        for reservation, actual, plan in pending:
            for h in reservation.holds:
                window_id = h.window_id
                d = deltas.get(window_id)
                if d is None:
                    d = deltas[window_id] = [0, 0]
                    names[window_id] = h.budget_name
                if h.lease is not None:
                    key = (h.lease, window_id)
                    leased[key] = leased.get(key, 0) + h.amount_nano
                else:
                    own.append((reservation.id, window_id, h.amount_nano))
                if actual:
                    d[1] += actual
                    if window_id not in first_plan:
                        first_plan[window_id] = plan
        if own:
            ids = sorted({rid for rid, _, _ in own})
            # Whoever deletes a hold (settle, release or expiry) gives its amount back, so
            # a hold is never returned twice.
            dropped: set[tuple[str, int]] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join(f":r{i}" for i in range(len(chunk)))
                drop = Statement(
                    "DELETE FROM gateway_reservation_holds "  # noqa: S608 (placeholders only)
                    f"WHERE reservation_id IN ({marks}) RETURNING reservation_id, window_id"
                )
                cursor = drop.run(conn, {f"r{i}": rid for i, rid in enumerate(chunk)})
                dropped.update((str(r), int(w)) for r, w in cursor.fetchall())
            for rid, window_id, amount in own:
                if (rid, window_id) in dropped:
                    deltas[window_id][0] += amount
                    dropped.discard((rid, window_id))
        # A leased call's estimate leaves its lease's hold row (one UPDATE per lease and
        # batch); the row was expired (given back) already if the UPDATE finds nothing.
        for (lease_id, window_id), amount in sorted(leased.items(), key=lambda i: i[0][1]):
            got = _HOLD_DOWN.run(conn, {"amt": amount, "rid": lease_id, "wid": window_id})
            row = got.fetchone()
            if row is not None:
                deltas[window_id][0] += amount
                if row[0] == 0:
                    _HOLD_DROP_EMPTY.run(conn, {"rid": lease_id, "wid": window_id})
        index: dict[str, _Row] | None = None
        for window_id in sorted(deltas):  # one lock order everywhere: no deadlocks
            back, actual_sum = deltas[window_id]
            if not (back or actual_sum):
                continue
            got = _SETTLE.run(
                conn, {"back": back, "actual": actual_sum, "id": window_id}
            ).fetchone()
            if got is None or window_id not in first_plan:
                continue
            if index is None:
                index = {r.spec.name: r for group in self._budgets.values() for r in group}
            row = index.get(names[window_id])
            if row is not None:
                self._maybe_alert(conn, window_id, row, got, now, first_plan[window_id])

    def _maybe_alert(
        self, conn: Connection, window_id: int, row: _Row, state: Any, now: datetime, plan: _Plan
    ) -> None:
        """Alert if ``state`` (spent, reserved, alerted, period start) crossed the soft line."""
        pct = row.spec.soft_pct
        spent, reserved, alerted, period_start = state
        if pct is None or alerted or spent + reserved < to_nano(row.spec.cap_usd) * pct // 100:
            return
        # The conditional update makes "once per budget and period" hold across processes.
        if _MARK.run(conn, {"id": window_id, "yes": True, "no": False}).rowcount != 1:
            return
        plan.alerts.append(
            BudgetAlert(
                budget=row.spec.name,
                scope=row.spec.scope,
                subject=row.spec.subject,
                period_start=str(period_start),
                threshold_pct=pct,
                cap_usd=str(row.spec.cap_usd),
                spent_usd=str(from_nano(spent)),
                reserved_usd=str(from_nano(reserved)),
                at=now,
            )
        )

    def _after(self, plan: _Plan) -> None:
        for alert in plan.alerts:
            self.alerts.emit(alert)


def specs_from_config(budgets: Iterable[BudgetConfig]) -> builtins.list[BudgetSpec]:
    """Budget specs from the ``gateway.budgets`` configuration entries."""
    return [
        BudgetSpec(
            name=b.name,
            scope=b.scope,
            subject=b.subject,
            cap_usd=Decimal(str(b.cap_usd)),
            period=b.period,
            soft_pct=b.soft_pct,
        )
        for b in budgets
    ]
