"""REST routes of insight's ROI, maturity, transition plans, budget burn and surveys, and
the survey's web form.

Every ``/api/insight/...`` route here knows who asks as ``GET /api/insight/kpis`` does
(:func:`orchestra.server.insight.insight_asker`: the session cookie, an OpenID Connect
bearer token or a gateway key, with the dashboard's roles). ``GET /survey/{round}`` is one
server-rendered page whose form posts to ``POST /api/insight/surveys/{round}/answers`` with
the gateway key in a password field; that route takes a key or a bearer token, never the
session cookie, so no cross-site request can answer for anyone.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from orchestra.analytics import (
    QUESTIONS,
    Assumptions,
    BudgetBurn,
    InsightSettings,
    InvalidAnswer,
    Principal,
    answer_survey,
    assess_maturity,
    budget_burn_report,
    list_survey_rounds,
    parse_period,
    plan_transition,
    roi_report,
    survey_results,
)
from orchestra.config import ROIAssumptions
from orchestra.config.schema import OrchestraConfig
from orchestra.errors import OrchestraError
from orchestra.server.api.endpoint import status_of
from orchestra.server.dashboard import ANSWER_SURVEY
from orchestra.server.insight import _error, insight_asker
from orchestra.store import Database

MAX_FORM = 16 * 1024


def _number(params: Any, name: str) -> float | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise InvalidAnswer(f"{name} must be a number", hint=f"for example {name}=0.5") from exc


def _date(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidAnswer(f"{raw!r} is not a date", hint="YYYY-MM-DD") from exc


def _form_page(round_id: str, title: str, message: str = "") -> str:
    rid, heading = html.escape(round_id), html.escape(title)
    fields = []
    for name, (low, high, wording) in QUESTIONS.items():
        options = "".join(
            f'<label><input type="radio" name="{name}" value="{v}" required> {v}</label> '
            for v in range(low, high + 1)
        )
        fields.append(
            f"<fieldset><legend>{html.escape(wording)} ({low}-{high})</legend>{options}</fieldset>"
        )
    note = f'<p role="status">{html.escape(message)}</p>' if message else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{heading}</title></head><body><main><h1>{heading}</h1>{note}"
        "<p>Your answer is stored without your name; results are shown only for groups of "
        "five or more.</p>"
        f'<form method="post" action="/api/insight/surveys/{rid}/answers">'
        + "".join(fields)
        + '<p><label>Your gateway key <input type="password" name="key" required '
        'autocomplete="off"></label></p><button type="submit">Send</button></form>'
        "</main></body></html>"
    )


def _assumptions(params: Any, default: ROIAssumptions) -> Assumptions:
    per_hour = _number(params, "cost_per_hour")
    share = _number(params, "effort_share")
    assumed = Assumptions(
        per_hour if per_hour is not None else default.cost_per_developer_hour,
        share if share is not None else default.effort_share,
    )
    if assumed.effort_share is not None and not 0 < assumed.effort_share <= 1:
        raise InvalidAnswer("effort_share must be in (0, 1]", hint="for example 0.5")
    if assumed.cost_per_developer_hour is not None and assumed.cost_per_developer_hour <= 0:
        raise InvalidAnswer("cost_per_hour must be positive", hint="for example 95")
    return assumed


def _fields(body: bytes, is_form: bool) -> dict[str, Any]:
    """The answer's fields from a form or a JSON body (``ValueError`` if unreadable)."""
    if is_form:
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    data = json.loads(body or b"null")
    return data if isinstance(data, dict) else {}


_THANKS = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Thank you'
    "</title></head><body><main><h1>Thank you</h1><p>Your answer is recorded "
    "without your name.</p></main></body></html>"
)


@dataclass(frozen=True)
class _Burns:
    """Budget burns as one answer."""

    burns: list[BudgetBurn]

    def to_dict(self) -> dict[str, Any]:
        return {"budgets": [b.to_dict() for b in self.burns]}


class _Handlers:
    """The routes' handlers over one database and key lookup."""

    def __init__(self, config: OrchestraConfig, database: Callable[[], Database]) -> None:
        self.aliases = dict(config.insight.aliases)
        self.settings = InsightSettings.from_config(config.insight)
        self.assumed = config.insight.roi
        self.database = database

    async def _report(
        self, request: Request, compute: Callable[[Principal, QueryParams], Any]
    ) -> JSONResponse:
        """``compute(principal, query)``'s ``to_dict()`` for whoever may read insight (401
        without a credential, 403 without the role; an analytics error answers its status)."""
        try:
            who = await insight_asker(request)
            found = await asyncio.to_thread(compute, who, request.query_params)
        except OrchestraError as exc:
            return _error(exc)
        return JSONResponse(found.to_dict())

    def _roi(self, who: Principal, params: QueryParams) -> Any:
        baseline = params.get("baseline")
        return roi_report(
            self.database(),
            who,
            unit=params.get("unit"),
            period=parse_period(params.get("period")),
            assumed=_assumptions(params, self.assumed),
            adopted_at=_date(params.get("adopted_on")),
            baseline=parse_period(baseline) if baseline else None,
            aliases=self.aliases,
        )

    def _maturity(self, who: Principal, params: QueryParams) -> Any:
        return assess_maturity(
            self.database(),
            who,
            unit=params.get("unit"),
            period=parse_period(params.get("period")),
            settings=self.settings,
        )

    def _plan(self, who: Principal, params: QueryParams) -> Any:
        # never records a snapshot: `orchestra insight plan --record` does, from cron
        return plan_transition(
            self.database(),
            who,
            target=params.get("target") or "",
            unit=params.get("unit"),
            period=parse_period(params.get("period")),
            start=_date(params.get("start")),
            settings=self.settings,
        )

    def _budgets(self, who: Principal, params: QueryParams) -> Any:
        return _Burns(
            budget_burn_report(
                self.database(), who, unit=params.get("unit"), settings=self.settings
            )
        )

    async def budgets(self, request: Request) -> JSONResponse:
        """``GET /api/insight/budgets``."""
        return await self._report(request, self._budgets)

    async def roi(self, request: Request) -> JSONResponse:
        """``GET /api/insight/roi``."""
        return await self._report(request, self._roi)

    async def maturity(self, request: Request) -> JSONResponse:
        """``GET /api/insight/maturity``."""
        return await self._report(request, self._maturity)

    async def plan(self, request: Request) -> JSONResponse:
        """``GET /api/insight/plan``."""
        return await self._report(request, self._plan)

    async def rounds(self, request: Request) -> JSONResponse:
        try:
            await insight_asker(request)
        except OrchestraError as exc:
            return _error(exc)
        found = await asyncio.to_thread(list_survey_rounds, self.database())
        return JSONResponse(
            [
                {
                    "round": r.id,
                    "title": r.title,
                    "opened_at": r.opened_at.isoformat(),
                    "closed": r.closed_at is not None,
                    "respondents": r.respondents,
                }
                for r in found
            ]
        )

    async def results(self, request: Request) -> JSONResponse:
        try:
            await insight_asker(request)
            result = await asyncio.to_thread(
                survey_results,
                self.database(),
                request.path_params["round"],
                unit=request.query_params.get("unit"),
            )
        except OrchestraError as exc:
            return _error(exc)
        return JSONResponse(result.to_dict())

    async def answers(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_FORM:
            return JSONResponse({"error": "answer too large"}, status_code=413)
        content_type = request.headers.get("content-type", "")
        is_form = content_type.startswith("application/x-www-form-urlencoded")
        round_id = request.path_params["round"]
        try:
            fields = _fields(body, is_form)
        except ValueError:
            return JSONResponse({"error": "the body is not JSON", "hint": "send JSON"}, 400)
        key = str(fields.pop("key", "")) or None
        try:
            # the key from the form, else the request's key or bearer token; never the
            # session cookie (another site's form could carry it)
            who = await insight_asker(request, ANSWER_SURVEY, key=key, cookies=False)
            scores = {name: _whole(fields.get(name), name) for name in QUESTIONS}
            await asyncio.to_thread(answer_survey, self.database(), who.name, round_id, **scores)
        except OrchestraError as exc:
            if is_form:
                page = _form_page(round_id, "Survey", exc.message)
                return HTMLResponse(page, status_of(exc))
            return _error(exc)
        if is_form:
            return HTMLResponse(_THANKS, status_code=201)
        return JSONResponse({"round": round_id, "recorded": True}, status_code=201)

    async def form(self, request: Request) -> HTMLResponse:
        round_id = request.path_params["round"]
        found = await asyncio.to_thread(list_survey_rounds, self.database())
        match = next((r for r in found if r.id == round_id), None)
        if match is None:
            return HTMLResponse(
                "<!doctype html><title>Not found</title><p>No such survey.</p>", 404
            )
        if match.closed_at is not None:
            return HTMLResponse(
                "<!doctype html><title>Closed</title><p>This survey is closed.</p>", 409
            )
        return HTMLResponse(_form_page(match.id, match.title))


def insight_more_routes(
    config: OrchestraConfig, database: Callable[[], Database]
) -> list[BaseRoute]:
    """ROI, maturity, plan, budget burn and survey routes for ``build_app(extra_routes=...)``."""
    h = _Handlers(config, database)
    return [
        Route("/api/insight/roi", h.roi, methods=["GET"]),
        Route("/api/insight/budgets", h.budgets, methods=["GET"]),
        Route("/api/insight/maturity", h.maturity, methods=["GET"]),
        Route("/api/insight/plan", h.plan, methods=["GET"]),
        Route("/api/insight/surveys", h.rounds, methods=["GET"]),
        Route("/api/insight/surveys/{round}/results", h.results, methods=["GET"]),
        Route("/api/insight/surveys/{round}/answers", h.answers, methods=["POST"]),
        Route("/survey/{round}", h.form, methods=["GET"]),
    ]


def _whole(value: object, name: str) -> int:
    try:
        number = int(str(value))
    except ValueError as exc:
        low, high, _ = QUESTIONS[name]
        raise InvalidAnswer(
            f"{name} is missing or not a whole number", hint=f"{low}-{high}"
        ) from exc
    return number
