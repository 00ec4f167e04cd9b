"""``/api/v1/budgets`` and ``/api/v1/spend``: dollar budgets and what was spent."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestra.accounting import BudgetSpec, BudgetStatus, spend_report
from orchestra.server.api.endpoint import Call, Endpoint, Page, page_of


class BudgetOut(BaseModel):
    """A budget with this period's spend."""

    name: str
    scope: str
    subject: str
    period: str
    cap_usd: str
    spent_usd: str
    reserved_usd: str
    remaining_usd: str
    soft_pct: int | None
    resets_at: datetime | None


class BudgetList(BaseModel):
    """A page of budgets."""

    items: list[BudgetOut]
    next_offset: int | None


class BudgetIn(BaseModel):
    """A budget's definition (the name is in the path)."""

    model_config = ConfigDict(extra="forbid")
    scope: Literal["developer", "team", "org", "run"]
    subject: str = Field(min_length=1, max_length=200)
    cap_usd: Decimal = Field(ge=0, le=Decimal("1e9"), allow_inf_nan=False)
    period: Literal["day", "week", "month", "none"] = "month"
    soft_pct: int | None = Field(default=80, ge=1, le=100)


class Removed(BaseModel):
    """What was removed."""

    removed: str


class SpendRowOut(BaseModel):
    """Spend of one group (a model)."""

    group: str
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: str


class SpendOut(BaseModel):
    """Spend by model over a period (the shape of ``orchestra spend --json``)."""

    by: str
    period: str
    since: str | None
    until: str | None
    rows: list[SpendRowOut]
    total_usd: str
    total_requests: int
    developer: str | None
    team: str | None = None


class SpendQuery(BaseModel):
    """Whose spend: your own by default; an admin may name any developer or unit or ask for
    all, a lead those of the units they lead (``all``: their unit's)."""

    model_config = ConfigDict(extra="forbid")
    developer: str | None = Field(default=None, max_length=64)
    team: str | None = Field(default=None, max_length=64)
    all: bool = False


def _out(status: BudgetStatus) -> BudgetOut:
    spec = status.spec
    return BudgetOut(
        name=spec.name,
        scope=spec.scope,
        subject=spec.subject,
        period=spec.period,
        cap_usd=str(spec.cap_usd),
        spent_usd=str(status.spent_usd),
        reserved_usd=str(status.reserved_usd),
        remaining_usd=str(status.remaining_usd),
        soft_pct=spec.soft_pct,
        resets_at=status.resets_at,
    )


def _budget_unit(call: Call[Any, Any], scope: str, subject: str) -> str | None:
    return call.ctx.directory.budget_unit(scope, subject)


async def _list_budgets(call: Call[Page, Any]) -> BudgetList:
    rows = await call.blocking(call.ctx.accounting().budgets.status)
    items, nxt = page_of(rows, call.query)
    return BudgetList(items=[_out(s) for s in items], next_offset=nxt)


async def _set_budget(call: Call[Any, BudgetIn]) -> BudgetOut:
    body = call.body
    call.require("change_budget", _budget_unit(call, body.scope, body.subject))
    spec = BudgetSpec(
        call.path["name"], body.scope, body.subject, body.cap_usd, body.period, body.soft_pct
    )
    budgets = call.ctx.accounting().budgets
    await call.blocking(budgets.define, spec, actor=call.identity.actor, source="api")
    rows = await call.blocking(budgets.status, spec.name)
    return _out(rows[0])


async def _remove_budget(call: Call[Any, Any]) -> Removed:
    budgets = call.ctx.accounting().budgets
    name = call.path["name"]
    rows = await call.blocking(budgets.status, name)
    if rows:
        call.require("change_budget", _budget_unit(call, rows[0].spec.scope, rows[0].spec.subject))
    await call.blocking(budgets.remove, name, actor=call.identity.actor)
    return Removed(removed=name)


def _spend_scope(call: Call[SpendQuery, Any]) -> tuple[str | None, str | None]:
    """``(developer, team)`` the spend asked for may cover: an admin's anything; a lead's the
    units they lead (and below) and the developers of those units; anyone's their own."""
    query = call.query
    principal = call.identity.principal
    if "admin" in principal.roles:
        return (None if query.all else query.developer), query.team
    if query.team is not None:
        if not call.leads(call.ctx.directory.unit_path(query.team)):
            call.require("manage_org", None)  # refused with the roles named
        return query.developer, query.team
    if query.developer is not None and query.developer != principal.id:
        if not call.leads(call.developer_unit(query.developer)):
            call.require("manage_org", None)
        return query.developer, None
    if query.all:
        if "lead" not in principal.roles or len(principal.lead_of) != 1:
            call.require("manage_org", None)
        return None, principal.lead_of[0].rsplit("/", 1)[-1]
    return principal.id, None


async def _spend(call: Call[SpendQuery, Any]) -> SpendOut:
    developer, team = _spend_scope(call)
    accounting = call.ctx.accounting()
    await call.blocking(accounting.ledger.flush)
    report = await call.blocking(
        spend_report, accounting.store, by="model", developer=developer, team=team
    )
    return SpendOut.model_validate({**report.to_json(), "developer": developer, "team": team})


ENDPOINTS = [
    Endpoint(
        "GET",
        "/budgets",
        "read_budgets",
        _list_budgets,
        "Budgets with this period's spend",
        BudgetList,
        query=Page,
        tag="budgets",
    ),
    Endpoint(
        "PUT",
        "/budgets/{name}",
        "change_budget",
        _set_budget,
        "Create or change a budget (audited)",
        BudgetOut,
        body=BudgetIn,
        tag="budgets",
    ),
    Endpoint(
        "DELETE",
        "/budgets/{name}",
        "change_budget",
        _remove_budget,
        "Remove a budget (audited)",
        Removed,
        tag="budgets",
        statuses=(400, 401, 403, 404),
    ),
    Endpoint(
        "GET",
        "/spend",
        "read_spend",
        _spend,
        "Spend by model (yours; your units' for a lead; any for an admin)",
        SpendOut,
        query=SpendQuery,
        tag="spend",
    ),
]
