"""``/api/v1/alerts``: insight's early-warning alerts, listed, acknowledged and resolved
(the dashboard's alert buttons post here)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestra.analytics import Alert, AlertNotFound, acknowledge, list_alerts, resolve
from orchestra.identity import register_action
from orchestra.server.api.context import NotConfigured
from orchestra.server.api.endpoint import Call, Endpoint, Page, page_of

_READERS = frozenset({"admin", "lead", "developer", "viewer"})
READ_INSIGHT = register_action("read_insight", _READERS).name
"""Reading insight's figures and alerts (developer figures are further limited)."""
MANAGE_ALERTS = register_action(
    "manage_alerts", frozenset({"lead"}), unit_scoped=True, mutating=True
).name
"""Acknowledging and resolving alerts: leads of the alert's unit, admins."""


class AlertOut(BaseModel):
    """An alert as stored."""

    id: str
    unit: str
    indicator: str
    severity: str
    state: str
    value: float | None
    threshold: float | None
    summary: str
    first_seen: str
    last_seen: str
    acknowledged_by: str | None
    resolved_at: str | None


class AlertList(BaseModel):
    """A page of alerts, newest first."""

    alerts: list[AlertOut]
    next_offset: int | None


class AlertQuery(Page):
    """Which alerts: all, or those in one state."""

    state: Literal["open", "acknowledged", "resolved"] | None = None


class AlertActionIn(BaseModel):
    """An acknowledgement or resolution (an empty object; a JSON body keeps cross-site
    forms out)."""

    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=500)


def _out(alert: Alert) -> AlertOut:
    return AlertOut.model_validate(alert.to_dict())


async def _list_alerts(call: Call[AlertQuery, Any]) -> AlertList:
    db = call.ctx.orchestra().database
    alerts = await call.blocking(list_alerts, db, state=call.query.state)
    chunk, more = page_of(alerts, call.query)
    return AlertList(alerts=[_out(a) for a in chunk], next_offset=more)


async def _change(call: Call[Any, AlertActionIn], state: str) -> AlertOut:
    db = call.ctx.orchestra().database
    alert_id = call.path["alert_id"]
    found = next((a for a in await call.blocking(list_alerts, db) if a.id == alert_id), None)
    if found is None:
        raise AlertNotFound(f"no alert {alert_id!r}", hint="GET /api/v1/alerts lists them")
    call.require(MANAGE_ALERTS, call.ctx.directory.unit_path(found.unit))
    change = acknowledge if state == "acknowledged" else resolve
    alert = await call.blocking(change, db, alert_id, call.identity.actor)
    details: dict[str, Any] = {"state": alert.state, "unit": alert.unit}
    if call.body.note:
        details["note"] = call.body.note
    try:
        audit = call.ctx.accounting().audit
    except NotConfigured:  # a server without accounting still records the alert's history
        audit = None
    if audit is not None:
        await call.blocking(audit.append, call.identity.actor, f"alert.{state}", alert_id, details)
    return _out(alert)


async def _acknowledge_alert(call: Call[Any, AlertActionIn]) -> AlertOut:
    return await _change(call, "acknowledged")


async def _resolve_alert(call: Call[Any, AlertActionIn]) -> AlertOut:
    return await _change(call, "resolved")


ENDPOINTS = [
    Endpoint(
        "GET",
        "/alerts",
        READ_INSIGHT,
        _list_alerts,
        "Early-warning alerts, newest first",
        AlertList,
        query=AlertQuery,
        tag="insight",
    ),
    Endpoint(
        "POST",
        "/alerts/{alert_id}/acknowledge",
        MANAGE_ALERTS,
        _acknowledge_alert,
        "Acknowledge an alert (leads of its unit, admins)",
        AlertOut,
        body=AlertActionIn,
        tag="insight",
        statuses=(400, 401, 403, 404),
    ),
    Endpoint(
        "POST",
        "/alerts/{alert_id}/resolve",
        MANAGE_ALERTS,
        _resolve_alert,
        "Resolve an alert by hand (leads of its unit, admins)",
        AlertOut,
        body=AlertActionIn,
        tag="insight",
        statuses=(400, 401, 403, 404),
    ),
]
