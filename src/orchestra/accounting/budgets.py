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
"""

from __future__ import annotations

import asyncio
import builtins
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from sqlalchemy import Connection, and_, delete, select, update

from orchestra.accounting.alerts import BudgetAlert, BudgetAlerts
from orchestra.accounting.attribution import Attribution
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
class Hold:
    """The part of a reservation held on one budget window."""

    window_id: int
    budget_name: str
    amount_nano: int


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
        self._loaded_at = -1e18
        self._windows: dict[tuple[str, str], int] = {}

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
            self._budgets = index
            self._loaded_at = now
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
        index = self._load()
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
        job = self._reserve_job(attribution, estimate_usd)
        if job is None:
            return Reservation(id="res_free", estimate_usd=Decimal(estimate_usd))
        reservation, plan = self._store.committer.run(job)
        self._after(plan)
        return reservation

    async def areserve(
        self, attribution: Attribution, model: str, estimate_usd: Decimal
    ) -> Reservation:
        """:meth:`reserve` without blocking the event loop."""
        if time.monotonic() - self._loaded_at >= self._refresh_s:
            await asyncio.to_thread(self._load)  # the periodic re-read of definitions
        job = self._reserve_job(attribution, estimate_usd)
        if job is None:
            return Reservation(id="res_free", estimate_usd=Decimal(estimate_usd))
        # On SQLite, when nothing else is writing, reserving right here (one short
        # transaction that never waits for a lock) is cheaper than two thread hand-offs.
        outcome, result = self._store.committer.try_inline(job)
        if outcome == "done" and result is not None:
            reservation, plan = result
        else:
            if outcome == "rolled_back":
                self._windows.clear()  # window ids cached by the rolled-back transaction
            reservation, plan = await self._store.committer.arun(job)
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

    # -- jobs run on the writer thread ---------------------------------------------

    def _reserve_job(
        self, attribution: Attribution, estimate_usd: Decimal
    ) -> Callable[[Connection], tuple[Reservation, _Plan]] | None:
        amount = to_nano(estimate_usd)
        if amount <= 0:
            return None
        rows = self._matching(attribution)
        if not rows:
            return None
        now = self._clock()
        res_id = "res_" + uuid.uuid4().hex
        expires = now + self._ttl
        if time.monotonic() >= self._next_expire:
            self._next_expire = time.monotonic() + self._expire_every
            expire_due = True
        else:
            expire_due = False

        committer = self._store.committer

        def job(conn: Connection) -> tuple[Reservation, _Plan]:
            if expire_due:
                self._expire_in(conn, now)
            targets: builtins.list[tuple[int, _Row, datetime | None]] = []
            for row in rows:
                start, end = period_bounds(row.spec.period, now)
                targets.append((self._window(conn, row, _period_key(start)), row, end))
            targets.sort(key=lambda t: t[0])  # one lock order everywhere: no deadlocks
            done: builtins.list[tuple[int, _Row]] = []
            states: builtins.list[tuple[int, _Row, Any]] = []
            for window_id, row, end in targets:
                got = _RESERVE.run(conn, {"amt": amount, "id": window_id}).fetchone()
                if got is None:
                    state = _STATE.run(conn, {"id": window_id}).fetchone()
                    if state is None:  # the budget was removed meanwhile: it no longer applies
                        self._windows.clear()
                        continue
                    for undo, _ in done:
                        _UNRESERVE.run(conn, {"amt": amount, "id": undo})
                    spent, reserved, cap = state
                    raise BudgetExceeded(
                        row.spec.name,
                        cap_usd=fmt_usd(from_nano(cap)),
                        spent_usd=fmt_usd(from_nano(spent)),
                        reserved_usd=fmt_usd(from_nano(reserved)),
                        requested_usd=fmt_usd(from_nano(amount)),
                        resets_at=end,
                        now=now,
                    )
                done.append((window_id, row))
                states.append((window_id, row, got))
            holds = tuple(Hold(w, r.spec.name, amount) for w, r in done)
            # The window rows already carry the amount; the hold rows (for expiry) of the
            # whole batch go in with one multi-row INSERT just before the commit.
            batch = committer.batch
            pending = batch.state.setdefault("holds", [])
            exp = db_time(conn, expires)
            pending.extend(
                {"rid": res_id, "wid": h.window_id, "amt": amount, "exp": exp} for h in holds
            )
            batch.at_end("holds", lambda c: _HOLD.run_many(c, pending))
            plan = _Plan()
            for window_id, row, got in states:
                self._maybe_alert(conn, window_id, row, got, now, plan)
            return Reservation(res_id, Decimal(estimate_usd), holds, now, expires), plan

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

    @staticmethod
    def _drop_hold(conn: Connection, res_id: str, window_id: int) -> bool:
        # Whoever deletes the hold row (settle, release or expiry) gives the amount back;
        # the others see rowcount 0, so a hold is never returned twice.
        return (
            conn.execute(
                delete(GatewayReservationHold).where(
                    and_(
                        GatewayReservationHold.reservation_id == res_id,
                        GatewayReservationHold.window_id == window_id,
                    )
                )
            ).rowcount
            == 1
        )

    def _expire_in(self, conn: Connection, now: datetime) -> int:
        stale = conn.execute(
            select(
                GatewayReservationHold.reservation_id,
                GatewayReservationHold.window_id,
                GatewayReservationHold.amount_nano,
            )
            .where(GatewayReservationHold.expires_at < now)
            .order_by(GatewayReservationHold.window_id)
        ).all()
        count = 0
        for res_id, window_id, amount in stale:
            if self._drop_hold(conn, res_id, window_id):
                conn.execute(
                    update(GatewayBudgetWindow)
                    .where(GatewayBudgetWindow.id == window_id)
                    .values(reserved_nano=GatewayBudgetWindow.reserved_nano - amount)
                )
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
        committer = self._store.committer

        def job(conn: Connection) -> _Plan:
            plan = _Plan()
            batch = committer.batch
            pending = batch.state.setdefault("settlements", [])
            pending.append((reservation, actual, plan))
            batch.at_end("settlements", lambda c: self._settle_all(c, pending))
            return plan

        return job

    def _settle_all(
        self, conn: Connection, pending: builtins.list[tuple[Reservation, int, _Plan]]
    ) -> None:
        now = self._clock()
        ids = sorted({r.id for r, _, _ in pending})
        # Whoever deletes a hold (settle, release or expiry) gives its amount back, so a
        # hold is never returned twice.
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
        deltas: dict[int, builtins.list[int]] = {}
        first_plan: dict[int, _Plan] = {}
        names: dict[int, str] = {}
        for reservation, actual, plan in pending:
            for h in reservation.holds:
                d = deltas.setdefault(h.window_id, [0, 0])
                if (reservation.id, h.window_id) in dropped:
                    d[0] += h.amount_nano
                    dropped.discard((reservation.id, h.window_id))
                d[1] += actual
                if actual:
                    first_plan.setdefault(h.window_id, plan)
                names[h.window_id] = h.budget_name
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
