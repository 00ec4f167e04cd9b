"""``/api/v1/surveys`` and ``/api/v1/insight/plan/snapshots``: insight's records the CLI
changes — survey rounds opened and closed (admins and leads), and a transition plan's
progress snapshot (``orchestra insight plan --record``; leads of the unit, admins).

Answers and results stay where the survey's form and the dashboard read them
(``/api/insight/...``, ``/dashboard/surveys``); evaluating a plan without recording it is
``GET /api/insight/plan``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestra.analytics import (
    Asker,
    InsightSettings,
    SurveyRound,
    close_survey_round,
    list_survey_rounds,
    open_survey_round,
    parse_period,
    plan_transition,
)
from orchestra.identity import Identity, register_action
from orchestra.server.api.alerts import READ_INSIGHT
from orchestra.server.api.endpoint import Call, Endpoint, Page, Timestamp, page_of

MANAGE_SURVEYS = register_action("manage_surveys", frozenset({"lead"}), mutating=True).name
"""Opening and closing survey rounds: leads and admins (as ``orchestra survey open``)."""
RECORD_PLAN = register_action(
    "record_plan", frozenset({"lead"}), unit_scoped=True, mutating=True
).name
"""Recording a transition plan's progress snapshot: leads of the unit, admins."""


class SurveyRoundOut(BaseModel):
    """A survey round and how many answered it."""

    round: str
    title: str
    opened_by: str
    opened_at: Timestamp
    closed_at: Timestamp | None
    respondents: int


class SurveyRoundList(BaseModel):
    """A page of rounds, newest first."""

    items: list[SurveyRoundOut]
    next_offset: int | None


class OpenRound(BaseModel):
    """A round to open."""

    model_config = ConfigDict(extra="forbid")
    round: str = Field(
        min_length=1, max_length=64, description="lower case, digits, . _ - (e.g. 2026-q4)"
    )
    title: str = Field(default="Developer survey", min_length=1, max_length=200)


class RecordPlan(BaseModel):
    """The plan to evaluate and record (as ``orchestra insight plan TARGET --record``)."""

    model_config = ConfigDict(extra="forbid")
    target: str = Field(min_length=1, max_length=32, description="the stage to move to")
    unit: str | None = Field(
        default=None, min_length=1, max_length=100, description="default: the organisation"
    )
    period: str | None = Field(
        default=None, min_length=1, max_length=64, description="default: the last 90 days"
    )
    start: date | None = Field(default=None, description="the first phase's start (today)")


class PlanSnapshotOut(BaseModel):
    """The plan as evaluated now, its progress snapshots included (the new one last)."""

    unit: str
    current: str
    target: str
    readiness: float | None
    snapshots: int
    plan: dict[str, Any]


def asker_of(identity: Identity) -> Asker:
    """Insight's principal for ``identity``: its id, roles and home unit's name (a scoped
    lead's first led unit when it has no home unit)."""
    p = identity.principal
    path = p.unit or (p.lead_of[0] if p.lead_of else None)
    return Asker(p.id, frozenset(p.roles), path.rsplit("/", 1)[-1] if path else None)


def _round_out(found: SurveyRound) -> SurveyRoundOut:
    return SurveyRoundOut(
        round=found.id,
        title=found.title,
        opened_by=found.opened_by,
        opened_at=found.opened_at,
        closed_at=found.closed_at,
        respondents=found.respondents,
    )


async def _list_surveys(call: Call[Page, Any]) -> SurveyRoundList:
    rounds = await call.blocking(list_survey_rounds, call.ctx.orchestra().database)
    chunk, more = page_of(rounds, call.query)
    return SurveyRoundList(items=[_round_out(r) for r in chunk], next_offset=more)


async def _open_survey(call: Call[Any, OpenRound]) -> SurveyRoundOut:
    db = call.ctx.orchestra().database
    who = asker_of(call.identity)
    opened = await call.blocking(open_survey_round, db, who, call.body.round, call.body.title)
    await call.audit("survey.open", opened.id, {"title": opened.title})
    return _round_out(opened)


async def _close_survey(call: Call[Any, Any]) -> SurveyRoundOut:
    db = call.ctx.orchestra().database
    who = asker_of(call.identity)
    closed = await call.blocking(close_survey_round, db, who, call.path["round"])
    await call.audit("survey.close", closed.id, {"respondents": closed.respondents})
    return _round_out(closed)


async def _record_plan(call: Call[Any, RecordPlan]) -> PlanSnapshotOut:
    body = call.body
    unit = call.ctx.directory.unit_path(body.unit) if body.unit else None
    call.require(RECORD_PLAN, unit)
    start = body.start and datetime(body.start.year, body.start.month, body.start.day, tzinfo=UTC)
    found = await call.blocking(
        plan_transition,
        call.ctx.orchestra().database,
        asker_of(call.identity),
        target=body.target,
        unit=body.unit,
        period=parse_period(body.period),
        start=start,
        record=True,
        settings=InsightSettings.from_config(call.ctx.current_config.insight),
    )
    details = {"target": found.target, "readiness": found.readiness.score}
    await call.audit("insight.plan.record", found.unit, details)
    return PlanSnapshotOut(
        unit=found.unit,
        current=found.current,
        target=found.target,
        readiness=found.readiness.score,
        snapshots=len(found.progress),
        plan=found.to_dict(),
    )


_CHANGES = (400, 401, 403, 404, 409)
ENDPOINTS = [
    Endpoint(
        "GET",
        "/surveys",
        READ_INSIGHT,
        _list_surveys,
        "Survey rounds, newest first, with how many answered",
        SurveyRoundList,
        query=Page,
        tag="insight",
    ),
    Endpoint(
        "POST",
        "/surveys",
        MANAGE_SURVEYS,
        _open_survey,
        "Open a survey round (leads and admins; audited)",
        SurveyRoundOut,
        body=OpenRound,
        status=201,
        tag="insight",
        statuses=_CHANGES,
    ),
    Endpoint(
        "POST",
        "/surveys/{round}/close",
        MANAGE_SURVEYS,
        _close_survey,
        "Close a survey round: no more answers (leads and admins; audited)",
        SurveyRoundOut,
        tag="insight",
        statuses=(400, 401, 403, 404),
    ),
    Endpoint(
        "POST",
        "/insight/plan/snapshots",
        RECORD_PLAN,
        _record_plan,
        "Evaluate a unit's transition plan and record it as a progress snapshot (leads of "
        "the unit, admins; audited)",
        PlanSnapshotOut,
        body=RecordPlan,
        status=201,
        tag="insight",
        statuses=(400, 401, 403, 404),
    ),
]
