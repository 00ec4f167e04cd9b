"""What a run cost, read from the gateway's ledger in the engine's database.

A gateway in this process (``orchestra run``, the demo, ``orchestra serve``) writes its
ledger to the same database as the runs, so ``orchestra status`` reads a run's cost there
without starting anything. A run whose calls went to a gateway with its own database has
no entries here: its cost is then unknown here, and said so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, inspect, select

from orchestra.store import Database
from orchestra.store.tables.gateway import GatewayLedgerEntry

NANO_PER_USD = 1_000_000_000
"""The ledger keeps costs in integer nano-dollars."""


@dataclass(frozen=True)
class RunCost:
    """A run's cost per step, from the ledger entries attributed to it."""

    by_step: dict[str, float] = field(default_factory=dict)
    calls: int = 0
    """Ledger entries (model calls) found for the run."""

    @property
    def total(self) -> float:
        """Dollars over all steps."""
        return sum(self.by_step.values())


def ledger_cost(database: Database, run_id: str) -> RunCost:
    """The cost of ``run_id`` per step, summed from the ledger (read only)."""
    if not inspect(database.engine).has_table(GatewayLedgerEntry.__tablename__):
        return RunCost()
    query = (
        select(
            GatewayLedgerEntry.step,
            func.sum(GatewayLedgerEntry.cost_nano),
            func.count(GatewayLedgerEntry.id),
        )
        .where(GatewayLedgerEntry.run_id == run_id)
        .group_by(GatewayLedgerEntry.step)
    )
    by_step: dict[str, float] = {}
    calls = 0
    with database.engine.connect() as conn:
        for step, nano, count in conn.execute(query):
            by_step[str(step or "?")] = int(nano or 0) / NANO_PER_USD
            calls += int(count)
    return RunCost(by_step, calls)
