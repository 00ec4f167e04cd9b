"""Dollar budgets: definitions, and hard caps enforced by reserving before a call and
settling after.

The invariant and the window rows' SQL are in :mod:`.reservations`; periods in
:mod:`.periods`; leases, which amortise the reserving transaction, in :mod:`.leases`.

**Free models** never touch a budget: a zero estimate reserves nothing and is never
refused. No key, admin or not, skips this check: there is no bypass parameter.
"""

from __future__ import annotations

import asyncio
import builtins
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, select, update

from orchestra.accounting.alerts import BudgetAlerts
from orchestra.accounting.attribution import Attribution, PerAttribution
from orchestra.accounting.audit import AuditLog
from orchestra.accounting.budgets.leases import Lease, LeasePolicy, Leases
from orchestra.accounting.budgets.periods import (
    PeriodCache,
    period_bounds,
    period_key,
)
from orchestra.accounting.budgets.reservations import (
    HOLD,
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
from orchestra.accounting.budgets.specs import BudgetSpec, BudgetStatus, spec_of
from orchestra.accounting.errors import BudgetExceeded, BudgetNotFound, UnknownName
from orchestra.accounting.money import fmt_usd, from_nano, to_nano
from orchestra.accounting.store import AccountingStore, Clock, db_time, utcnow
from orchestra.config import OrgNames
from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayBudget, GatewayBudgetWindow

_ReserveJob = Callable[[Connection], tuple[Reservation, Plan, builtins.list[Lease]]]


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
        names: OrgNames | None = None,
    ) -> None:
        self._store = AccountingStore.of(db)
        self._names = names
        """The organisation's names: budgets on developers or teams outside it are refused."""
        self._audit = audit if audit is not None else AuditLog(self._store, clock=clock)
        self.alerts = alerts if alerts is not None else BudgetAlerts()
        self._clock = clock
        self._ttl = reservation_ttl
        self._refresh_s = refresh_s
        self._expire_every = expire_every_s
        self._next_expire = 0.0
        self._lock = threading.Lock()
        self._budgets: BudgetIndex = {}
        self._matched = PerAttribution(self._match)
        """:meth:`_match` per attribution, until the definitions are re-read."""
        self._loaded_at = -1e18
        self._windows = Windows(self._store, clock, lambda: self._budgets)
        self._periods = PeriodCache()
        # Reservation ids: unique across processes (the random part) and cheap per call.
        self._id_prefix = uuid.uuid4().hex[:20]
        self._ids = itertools.count()
        self._leases = (
            Leases(
                leases,
                self._store,
                self._windows,
                clock=clock,
                ttl=reservation_ttl,
                index=lambda: self._budgets,
                after=self.emit_alerts,
            )
            if leases is not None
            else None
        )

    @property
    def store(self) -> AccountingStore:
        """The store (database and writer) the budgets live in."""
        return self._store

    # -- definitions ---------------------------------------------------------------

    def _load(self, *, force: bool = False) -> dict[tuple[str, str], builtins.list[BudgetRow]]:
        """Budget definitions by (scope, subject), re-read every ``refresh_s`` seconds.

        Budgets defined by another process (the CLI, another worker) apply within that
        delay; ones defined through this book apply at once.
        """
        now = time.monotonic()
        if not force and now - self._loaded_at < self._refresh_s:
            return self._budgets
        with self._store.db.session() as session:
            rows = session.scalars(select(GatewayBudget)).all()
            index: dict[tuple[str, str], builtins.list[BudgetRow]] = {}
            for row in rows:
                index.setdefault((row.scope, row.subject), []).append(
                    BudgetRow(row.id, spec_of(row))
                )
        with self._lock:
            before = {r.id: r.spec for group in self._budgets.values() for r in group}
            self._budgets = index
            self._loaded_at = now
        if self._leases:
            after = {r.id: r.spec for group in index.values() for r in group}
            changed = {bid for bid, spec in before.items() if after.get(bid) != spec}
            if changed:  # a budget removed or redefined: its leases go back at once
                self._leases.return_where(lambda lease: lease.budget_id in changed, wait=force)
        return index

    def define(self, spec: BudgetSpec, *, actor: str = "system", source: str = "api") -> None:
        """Create or replace the budget named ``spec.name`` (audited)."""
        spec = spec.validated()
        why = self._names.unknown_subject(spec.scope, spec.subject) if self._names else None
        if why is not None:
            raise UnknownName(
                f"budget {spec.name!r} not changed: {why}",
                hint="use a name from orchestra.yaml's organisation (`orchestra org show`)",
            )
        cap = to_nano(spec.cap_usd)
        # The change and its audit entry commit together, or neither does.
        with self._audit.transaction() as tx:
            with tx.session() as session:
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
            tx.append(
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
        self._load(force=True)

    def remove(self, name: str, *, actor: str = "system") -> None:
        """Delete a budget and its period records (audited, in one transaction)."""
        with self._audit.transaction() as tx:
            with tx.session() as session:
                row = session.scalars(
                    select(GatewayBudget).where(GatewayBudget.name == name)
                ).first()
                if row is None:
                    raise BudgetNotFound(
                        f"no budget named {name!r}", hint="see `orchestra budgets list`"
                    )
                session.execute(
                    delete(GatewayBudgetWindow).where(GatewayBudgetWindow.budget_id == row.id)
                )
                session.delete(row)
            tx.append(actor, "budget.remove", name, {})
        self._load(force=True)

    def sync(self, specs: Iterable[BudgetSpec], *, actor: str = "config") -> int:
        """Make the config-sourced budgets equal ``specs``; returns the number of changes."""
        wanted = {s.name: s.validated() for s in specs}
        with self._store.db.session() as session:
            rows = {r.name: r for r in session.scalars(select(GatewayBudget))}
        changes = 0
        for name, spec in wanted.items():
            row = rows.get(name)
            if row is None or spec_of(row) != spec or row.source != "config":
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
                        GatewayBudgetWindow.period_start == period_key(start),
                    )
                ).first()
                out.append(
                    BudgetStatus(
                        spec_of(b),
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

    def _matching(self, a: Attribution) -> builtins.list[BudgetRow]:
        """The rows of :meth:`applicable`, remembered per attribution until the definitions
        are re-read (the same few callers make every request). Not to be changed."""
        return self._matched.get(self._load(), a)

    @staticmethod
    def _match(
        index: dict[tuple[str, str], builtins.list[BudgetRow]], a: Attribution
    ) -> builtins.list[BudgetRow]:
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
            self._ungrant(granted, leading)
            raise
        self._install(taken, leading)
        self.emit_alerts(plan)
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
            committer = self._store.committer
            try:
                outcome, result = ("busy", None) if queued else committer.try_inline(job)
            except BudgetExceeded:
                # Rolled back, window rows it made included: forget their cached ids.
                self._windows.clear()
                if not committer.pending:
                    raise
                # Settlements of finished calls may still sit in the writer's queue (queued
                # ledger entries); their reservations must not count against this call.
                # The writer applies them before this job, so the refusal, if any, is final.
                outcome, result = "busy", None
            if outcome == "done" and result is not None:
                reservation, plan, taken = result
            else:
                if outcome == "rolled_back":
                    self._windows.clear()  # window ids cached by the rolled-back transaction
                reservation, plan, taken = await self._store.committer.arun(job)
        except BaseException:
            self._ungrant(granted, leading)
            raise
        self._install(taken, leading)
        self.emit_alerts(plan)
        return reservation

    def settle(self, reservation: Reservation, actual_usd: Decimal) -> None:
        """Turn the hold into spend of ``actual_usd`` (which may exceed the estimate)."""
        if reservation.empty:
            return
        self.emit_alerts(self._store.committer.run(self.settle_job(reservation, actual_usd)))

    async def asettle(self, reservation: Reservation, actual_usd: Decimal) -> None:
        """:meth:`settle` without blocking the event loop."""
        if reservation.empty:
            return
        self.emit_alerts(await self._store.committer.arun(self.settle_job(reservation, actual_usd)))

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
            return self._windows.expire_in(conn, when)

        return self._store.committer.run(job)

    # -- leases --------------------------------------------------------------------

    def return_idle(self, *, wait: bool = True) -> int:
        """Give back the leases unused for ``idle_s``, too old, or of a past period;
        returns how many. Runs by itself every ``idle_s / 2`` while leases are held."""
        return self._leases.return_idle(wait=wait) if self._leases is not None else 0

    def close(self) -> None:
        """Give every unused lease back (blocking) and stop the lease timer; idempotent.

        Call before closing the store. Reservations already granted stay valid: their
        settlement moves their estimates out of the lease's hold row as usual."""
        if self._leases is not None:
            self._leases.close()

    # -- jobs run on the writer thread ---------------------------------------------

    def _prepare(
        self, attribution: Attribution, estimate_usd: Decimal
    ) -> (
        Reservation
        | tuple[_ReserveJob, builtins.list[tuple[Lease, Hold]], bool, builtins.list[str]]
    ):
        """The reservation itself when leases cover every budget (or none applies), else
        the database job for the rest, the in-memory grants made so far, whether a lease
        remainder was queued to go back first, and the budgets whose lease take this call
        leads (to end with :meth:`Leases.install`)."""
        amount = to_nano(estimate_usd)
        if amount <= 0:
            return Reservation(id="res_free", estimate_usd=Decimal(estimate_usd))
        rows = self._matching(attribution)
        if not rows:
            return Reservation(id="res_free", estimate_usd=Decimal(estimate_usd))
        now = self._clock()
        res_id = f"res_{self._id_prefix}{next(self._ids):x}"
        leases = self._leases
        if leases is None:
            needs: builtins.list[Need] = []
            for row in rows:
                key, end = self._periods.current(row.spec.period, now)
                needs.append(Need(row, key, end))
            job = self._reserve_job(res_id, amount, estimate_usd, needs, [], now)
            return job, [], False, []
        grants = leases.grant(rows, amount, now, self._periods)
        if not grants.needs:
            holds = tuple(hold for _, hold in grants.granted)
            return Reservation(res_id, Decimal(estimate_usd), holds, now, now + self._ttl)
        if grants.back:
            leases.submit_back(grants.back)
        job = self._reserve_job(res_id, amount, estimate_usd, grants.needs, grants.granted, now)
        return job, grants.granted, bool(grants.back), grants.leading

    def _ungrant(
        self, granted: builtins.list[tuple[Lease, Hold]], leading: builtins.list[str]
    ) -> None:
        """A reservation failed: its in-memory grants go back, its lease takes end."""
        if self._leases is not None:
            self._leases.ungrant(granted)
            self._leases.install([], leading)

    def _install(self, taken: builtins.list[Lease], leading: builtins.list[str]) -> None:
        if self._leases is not None:
            self._leases.install(taken, leading)

    def _reserve_job(
        self,
        res_id: str,
        amount: int,
        estimate_usd: Decimal,
        needs: builtins.list[Need],
        granted: builtins.list[tuple[Lease, Hold]],
        now: datetime,
    ) -> _ReserveJob:
        expires = now + self._ttl
        if time.monotonic() >= self._next_expire:
            self._next_expire = time.monotonic() + self._expire_every
            expire_due = True
        else:
            expire_due = False
        leases = self._leases
        windows = self._windows
        committer = self._store.committer

        def job(conn: Connection) -> tuple[Reservation, Plan, builtins.list[Lease]]:
            if expire_due:
                windows.expire_in(conn, now)
            steps = [(windows.window(conn, need.row, need.period), need) for need in needs]
            steps.sort(key=lambda t: t[0])  # one lock order everywhere: no deadlocks
            done: builtins.list[tuple[int, int]] = []  # (window id, amount reserved)
            holds: builtins.list[Hold] = []
            rows_out: builtins.list[dict[str, Any]] = []
            taken: builtins.list[Lease] = []
            states: builtins.list[tuple[int, BudgetRow, Any]] = []
            for window_id, need in steps:
                row = need.row
                if leases is not None and need.lease:
                    took = leases.take(conn, window_id, row, need, amount, now)
                    if took is not None:
                        lease, got = took
                        done.append((window_id, lease.size))
                        holds.append(Hold(window_id, row.spec.name, amount, lease.hold_id))
                        rows_out.append({"rid": lease.hold_id, "wid": window_id, "amt": lease.size})
                        taken.append(lease)
                        states.append((window_id, row, got))
                        continue
                got = RESERVE.run(conn, {"amt": amount, "id": window_id}).fetchone()
                if got is None and windows.apply_pending(conn):  # settled calls first
                    got = RESERVE.run(conn, {"amt": amount, "id": window_id}).fetchone()
                if got is None:
                    state = STATE.run(conn, {"id": window_id}).fetchone()
                    if state is None:  # the budget was removed meanwhile: it no longer applies
                        windows.clear()
                        continue
                    for undo, amt in done:
                        UNRESERVE.run(conn, {"amt": amt, "id": undo})
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
                rows_out.append({"rid": res_id, "wid": window_id, "amt": amount})
                states.append((window_id, row, got))
            # The window rows already carry the amounts; the hold rows (for expiry) of the
            # whole batch go in with one multi-row INSERT just before the commit.
            exp = db_time(conn, expires)
            exp_lease = db_time(conn, leases.expiry(now)) if leases is not None else exp
            for r in rows_out:
                r["exp"] = exp if r["rid"] == res_id else exp_lease
            batch = committer.batch
            pending = batch.state.setdefault("holds", [])
            pending.extend(rows_out)
            batch.at_end("holds", lambda c: HOLD.run_many(c, pending))
            plan = Plan()
            for window_id, row, got in states:
                windows.maybe_alert(conn, window_id, row, got, now, plan)
            all_holds = tuple(holds) + tuple(hold for _, hold in granted)
            reservation = Reservation(res_id, Decimal(estimate_usd), all_holds, now, expires)
            return reservation, plan, taken

        return job

    def settle_job(
        self, reservation: Reservation, actual_usd: Decimal | None
    ) -> Callable[[Connection], Plan]:
        """The database work of settling (``actual_usd``) or releasing (``None``) a
        reservation; exposed so the ledger can settle in the same transaction as it
        appends the entry."""
        return self._windows.settle_job(reservation, actual_usd)

    def settle_in_batch(self, settlements: Iterable[tuple[Reservation, int]], plan: Plan) -> None:
        """Settle each ``(reservation, actual nano-dollars)`` in the write batch now running
        (call only from a job on the writer thread): applied together at the batch's end,
        with every other settlement of the batch. Alerts crossed go into ``plan``."""
        self._windows.settle_in_batch(settlements, plan)

    def emit_alerts(self, plan: Plan) -> None:
        """Send the budget alerts a committed job crossed."""
        for alert in plan.alerts:
            self.alerts.emit(alert)
