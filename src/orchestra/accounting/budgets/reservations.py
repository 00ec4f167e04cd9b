"""Reservations: money held on budget windows for a call until it is settled, released
or expires, and the window rows' SQL.

**Invariant.** A reservation is granted only if, atomically in the database,
``spent + reserved + estimate <= cap`` on every budget the call falls under; so at any
moment the spend of a budget can exceed its cap only by what calls in flight cost beyond
their estimates. The check is one conditional ``UPDATE`` per budget window, run in a write
transaction (``BEGIN IMMEDIATE`` on SQLite, row locks on PostgreSQL), so it holds across
threads, processes and gateway workers sharing the database.

Whoever removes an amount from a hold row (settle, release, expiry, a lease's return)
gives it back to the window, so an amount is never returned twice.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from orchestra.accounting.alerts import BudgetAlert
from orchestra.accounting.money import from_nano, to_nano
from orchestra.accounting.store import AccountingStore, Clock, Statement
from orchestra.store.tables.gateway import GatewayBudgetWindow, GatewayReservationHold

if TYPE_CHECKING:
    from orchestra.accounting.budgets.specs import BudgetSpec


# The hot path uses fixed SQL text: no statement building or cache-key work per call.
RESERVE = Statement(
    "UPDATE gateway_budget_windows SET reserved_nano = reserved_nano + :amt "
    "WHERE id = :id AND spent_nano + reserved_nano + :amt <= cap_nano "
    "RETURNING spent_nano, reserved_nano, alerted, period_start"
)
UNRESERVE = Statement(
    "UPDATE gateway_budget_windows SET reserved_nano = reserved_nano - :amt WHERE id = :id"
)
STATE = Statement(
    "SELECT spent_nano, reserved_nano, cap_nano FROM gateway_budget_windows WHERE id = :id"
)
HOLD = Statement(
    "INSERT INTO gateway_reservation_holds (reservation_id, window_id, amount_nano, expires_at) "
    "VALUES (:rid, :wid, :amt, :exp)"
)
SETTLE = Statement(
    "UPDATE gateway_budget_windows SET reserved_nano = reserved_nano - :back, "
    "spent_nano = spent_nano + :actual WHERE id = :id "
    "RETURNING spent_nano, reserved_nano, alerted, period_start"
)
HOLD_DOWN = Statement(
    "UPDATE gateway_reservation_holds SET amount_nano = amount_nano - :amt "
    "WHERE reservation_id = :rid AND window_id = :wid AND amount_nano >= :amt "
    "RETURNING amount_nano"
)
HOLD_DROP = Statement(
    "DELETE FROM gateway_reservation_holds WHERE reservation_id = :rid AND window_id = :wid "
    "RETURNING amount_nano"
)
HOLD_DROP_EMPTY = Statement(
    "DELETE FROM gateway_reservation_holds "
    "WHERE reservation_id = :rid AND window_id = :wid AND amount_nano = 0"
)
MARK = Statement(
    "UPDATE gateway_budget_windows SET alerted = :yes WHERE id = :id AND alerted = :no"
)


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
        for a leased hold."""
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
        """The reservation :meth:`as_json` describes."""
        return cls(
            str(data["id"]),
            Decimal(data["estimate"]),
            tuple(
                Hold(int(h[0]), str(h[1]), int(h[2]), str(h[3]) if len(h) > 3 else None)
                for h in data["holds"]
            ),
        )


@dataclass
class BudgetRow:
    """A budget definition as the hot path keeps it: its id and spec."""

    id: str
    spec: BudgetSpec


@dataclass
class Plan:
    """What a write job leaves to do after its commit: the budget alerts it crossed."""

    alerts: builtins.list[BudgetAlert] = field(default_factory=list)


BudgetIndex = dict[tuple[str, str], builtins.list[BudgetRow]]
"""Budget definitions by (scope, subject)."""


@dataclass(slots=True)
class Need:
    """A window a reservation job must reserve on in the database."""

    row: BudgetRow
    period: str
    end: datetime | None
    lease: bool = True
    """May take a lease (else: reserve exactly; a lease take is already in flight)."""


def _insert_ignore(conn: Connection, values: dict[str, object]) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(GatewayBudgetWindow).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(GatewayBudgetWindow).values(**values).on_conflict_do_nothing())


class Windows:
    """The budget window rows of the current periods: their ids (cached), and the writer's
    work on them: settling a batch's reservations together, expiring dead callers' holds,
    and the soft alert once per period."""

    def __init__(
        self, store: AccountingStore, clock: Clock, index: Callable[[], BudgetIndex]
    ) -> None:
        self._store = store
        self._clock = clock
        self._index = index
        """The budget definitions now (to name the budget of an alert)."""
        self._ids: dict[tuple[str, str], int] = {}

    def clear(self) -> None:
        """Forget the cached window ids (a rolled-back transaction may have cached some)."""
        self._ids.clear()

    def window(self, conn: Connection, row: BudgetRow, key: str) -> int:
        """The id of ``row``'s window for the period ``key`` (created if missing)."""
        cached = self._ids.get((row.id, key))
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
        if len(self._ids) > 100_000:
            self._ids.clear()
        self._ids[(row.id, key)] = window_id
        return int(window_id)

    def expire_in(self, conn: Connection, now: datetime) -> int:
        """Release the holds expired at ``now`` (their callers died); returns how many."""
        stale = conn.execute(
            select(GatewayReservationHold.reservation_id, GatewayReservationHold.window_id)
            .where(GatewayReservationHold.expires_at < now)
            .order_by(GatewayReservationHold.window_id)
        ).all()
        count = 0
        for res_id, window_id in stale:
            # Whoever deletes the hold row (settle, release or expiry) gives back what it
            # holds then (a lease's row shrinks as its calls settle), so never twice.
            got = HOLD_DROP.run(conn, {"rid": res_id, "wid": window_id}).fetchone()
            if got is not None:
                if got[0]:
                    UNRESERVE.run(conn, {"amt": got[0], "id": window_id})
                count += 1
        return count

    def settle_job(
        self, reservation: Reservation, actual_usd: Decimal | None
    ) -> Callable[[Connection], Plan]:
        """The database work of settling (``actual_usd``) or releasing (``None``) a reservation.

        The settlements of one batch are applied together at its end: one ``DELETE`` of
        their holds and one ``UPDATE`` per budget window touched, whatever their number.
        """
        actual = to_nano(actual_usd) if actual_usd is not None else 0

        def job(conn: Connection) -> Plan:
            plan = Plan()
            self.settle_in_batch(((reservation, actual),), plan)
            return plan

        return job

    def settle_in_batch(self, settlements: Iterable[tuple[Reservation, int]], plan: Plan) -> None:
        """Settle each ``(reservation, actual nano-dollars)`` in the write batch now running
        (call only from a job on the writer thread): applied together at the batch's end,
        with every other settlement of the batch. Alerts crossed go into ``plan``."""
        batch = self._store.committer.batch
        pending: builtins.list[tuple[Reservation, int, Plan]] | None = batch.state.get(
            "settlements"
        )
        if pending is None:
            pending = batch.state["settlements"] = []
            batch.at_end("settlements", lambda c: self._settle_all(c, pending))
        pending.extend((reservation, actual, plan) for reservation, actual in settlements)

    def apply_pending(self, conn: Connection) -> bool:
        """Apply now the settlements queued in the running batch so far (they are applied
        at its end otherwise); False when there were none. A reservation that the cap
        refuses calls this and tries again: a finished call's settlement must not keep
        its reservation counting just because it waits for the batch's end."""
        pending: builtins.list[tuple[Reservation, int, Plan]] | None = (
            self._store.committer.batch.state.get("settlements")
        )
        if not pending:
            return False
        taken = pending[:]
        pending.clear()
        self._settle_all(conn, taken)
        return True

    def _settle_all(
        self, conn: Connection, pending: builtins.list[tuple[Reservation, int, Plan]]
    ) -> None:
        now = self._clock()
        deltas: dict[int, builtins.list[int]] = {}
        first_plan: dict[int, Plan] = {}
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
            got = HOLD_DOWN.run(conn, {"amt": amount, "rid": lease_id, "wid": window_id})
            row = got.fetchone()
            if row is not None:
                deltas[window_id][0] += amount
                if row[0] == 0:
                    HOLD_DROP_EMPTY.run(conn, {"rid": lease_id, "wid": window_id})
        index: dict[str, BudgetRow] | None = None
        for window_id in sorted(deltas):  # one lock order everywhere: no deadlocks
            back, actual_sum = deltas[window_id]
            if not (back or actual_sum):
                continue
            got = SETTLE.run(conn, {"back": back, "actual": actual_sum, "id": window_id}).fetchone()
            if got is None or window_id not in first_plan:
                continue
            if index is None:
                index = {r.spec.name: r for group in self._index().values() for r in group}
            row = index.get(names[window_id])
            if row is not None:
                self.maybe_alert(conn, window_id, row, got, now, first_plan[window_id])

    def maybe_alert(
        self,
        conn: Connection,
        window_id: int,
        row: BudgetRow,
        state: Any,
        now: datetime,
        plan: Plan,
    ) -> None:
        """Alert if ``state`` (spent, reserved, alerted, period start) crossed the soft line."""
        pct = row.spec.soft_pct
        spent, reserved, alerted, period_start = state
        if pct is None or alerted or spent + reserved < to_nano(row.spec.cap_usd) * pct // 100:
            return
        # The conditional update makes "once per budget and period" hold across processes.
        if MARK.run(conn, {"id": window_id, "yes": True, "no": False}).rowcount != 1:
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
