"""Pipeline runs as accounting sees them: one key and one budget per run.

A run is charged to the developer who started it and to their team, like any call of
theirs, so developer and team budgets govern it; its own key also carries the run, so the
run's budget (``run:<id>``, scope ``run``) is reserved against on every call whatever run
the request names. The key lives while the run works: :meth:`RunGrants.open` revokes the
run's earlier keys (a resume) and makes a new one, :meth:`RunGrants.end` revokes it. Workers
sharing a database each hold their own key of a run they hold part of, and opening one
revokes only the keys its :class:`~orchestra.accounting.keys.KeyHolding` fences off.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orchestra.accounting.budgets import BudgetBook, BudgetSpec
from orchestra.accounting.errors import RunOwnedElsewhere
from orchestra.accounting.keys import KeyHolding, KeyRecord, KeyStore


def run_budget_name(run_id: str) -> str:
    """The name of the budget scoped to ``run_id``."""
    return f"run:{run_id}"


@dataclass
class RunGrants:
    """Opens and ends the key and budget of pipeline runs."""

    keys: KeyStore
    budgets: BudgetBook

    def open(
        self,
        developer: str,
        team: str | None,
        run_id: str,
        budget_usd: float | Decimal | None,
        *,
        actor: str = "engine",
        holding: KeyHolding | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key for ``run_id`` of ``developer`` (earlier keys of the run revoked; with
        ``holding``, only those it fences off) and the run's budget set to ``budget_usd``
        (``None``: no run budget; an earlier one is kept). Returns ``(secret, record)``;
        refuses a run that belongs to another developer."""
        self.check_owner(developer, run_id)
        if budget_usd is not None:
            self.budgets.define(
                BudgetSpec(
                    name=run_budget_name(run_id),
                    scope="run",
                    subject=run_id,
                    cap_usd=Decimal(str(budget_usd)),
                    period="none",
                    soft_pct=None,
                ),
                actor=actor,
                source="run",
            )
        self.keys.revoke_run(run_id, actor=actor, holding=holding)
        holder = None if holding is None else holding.holder
        return self.keys.create_for_run(developer, team, run_id, holder=holder, actor=actor)

    def end(self, run_id: str, *, developer: str | None = None, actor: str = "engine") -> int:
        """Revoke the run's keys (the run ended); returns how many were still usable.
        With ``developer``, refuses a run that belongs to someone else."""
        if developer is not None:
            self.check_owner(developer, run_id)
        return self.keys.revoke_run(run_id, actor=actor)

    def check_owner(self, developer: str, run_id: str) -> None:
        """Raise :class:`RunOwnedElsewhere` when ``run_id`` has keys of another developer."""
        owners = {record.developer for record in self.keys.run_keys(run_id)}
        if owners - {developer}:
            raise RunOwnedElsewhere(
                f"run {run_id!r} belongs to another developer",
                hint="a run's key and budget are managed by the developer who started it",
            )
