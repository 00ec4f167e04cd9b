"""Budget definitions: what a budget is (:class:`BudgetSpec`), where its period stands
(:class:`BudgetStatus`), and the specs ``gateway.budgets`` describes."""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, cast

from orchestra.accounting.budgets.periods import PERIODS, SCOPES, Period, Scope
from orchestra.accounting.errors import InvalidBudget
from orchestra.accounting.money import from_nano
from orchestra.store.tables.gateway import GatewayBudget

if TYPE_CHECKING:
    from orchestra.config.gateway import BudgetConfig

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,199}$")


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


def spec_of(row: GatewayBudget) -> BudgetSpec:
    """The spec a ``gateway_budgets`` row holds."""
    return BudgetSpec(
        name=row.name,
        scope=cast(Scope, row.scope),
        subject=row.subject,
        cap_usd=from_nano(row.cap_nano),
        period=cast(Period, row.period),
        soft_pct=row.soft_pct,
    )


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
