"""``/api/v1/runs``: start runs on allow-listed repositories, list them, a run's status and
steps, its report, cancel and resume it.

A run is started for the caller: charged to them (a run key of theirs, with their team),
decided by the ``start_run`` policies with the caller as principal, on a repository the
configuration names in ``server.repositories`` (the caller names it, never a path). The
engine is the server process's own (:mod:`orchestra.server.resuming`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestra.errors import ApiError, EngineError
from orchestra.server.api.context import NotConfigured, ResumeRequest, RunHost, RunRequest
from orchestra.server.api.endpoint import Call, Endpoint, Page, Timestamp, page_of
from orchestra.server.api.policy_check import policy_principal
from orchestra.server.api.repositories import allowed_repository

MAX_LISTED = 1000


class RunOut(BaseModel):
    """A run."""

    id: str
    task: str
    pipeline: str
    status: str
    phase: str | None
    branch: str | None
    failure_reason: str | None
    budget_usd: float | None
    created_at: Timestamp
    finished_at: Timestamp | None


class RunList(BaseModel):
    """A page of runs, newest first."""

    items: list[RunOut]
    next_offset: int | None


class StepOut(BaseModel):
    """One step of a run."""

    step: str
    phase: str
    agent: str
    status: str
    input_tokens: int | None
    output_tokens: int | None


class RunStatus(BaseModel):
    """A run and its steps."""

    run: RunOut
    steps: list[StepOut]


class RunReport(BaseModel):
    """A finished run's report (the JSON ``orchestra report --json`` prints)."""

    run_id: str
    report: dict[str, Any]


class StartRun(BaseModel):
    """A run to start: what to do, on which allow-listed repository, with what budget."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=20_000, pattern=r"\S")
    repository: str = Field(
        min_length=1, max_length=100, description="a name from server.repositories"
    )
    budget_usd: float | None = Field(default=None, gt=0, le=1_000_000)
    pipeline: str | None = Field(default=None, min_length=1, max_length=64)


class ResumeRun(BaseModel):
    """How to continue a run: with a new budget (needed for a run stopped by its budget)."""

    model_config = ConfigDict(extra="forbid")
    budget_usd: float | None = Field(default=None, gt=0, le=1_000_000)


class NotARunner(ApiError):
    """The caller is not a developer a run can be charged to (a service key)."""

    status = 403


class NotYourRun(ApiError):
    """Only the run's owner, a lead of their unit or an admin may continue it."""

    status = 403


def _out(row: Any) -> RunOut:
    return RunOut.model_validate(row, from_attributes=True)


def _runs(call: Call[Any, Any]) -> Any:
    return call.ctx.orchestra().runs()


async def _list_runs(call: Call[Page, Any]) -> RunList:
    rows = await call.blocking(_runs(call).list_runs, MAX_LISTED)
    items, nxt = page_of(rows, call.query)
    return RunList(items=[_out(r) for r in items], next_offset=nxt)


async def _run_status(call: Call[Any, Any]) -> RunStatus:
    runs = _runs(call)
    row = await call.blocking(runs.get, call.path["run_id"])
    steps = await call.blocking(runs.steps, row.id)
    return RunStatus(
        run=_out(row), steps=[StepOut.model_validate(s, from_attributes=True) for s in steps]
    )


async def _run_report(call: Call[Any, Any]) -> RunReport:
    row = await call.blocking(_runs(call).get, call.path["run_id"])
    if not row.report_path:
        raise EngineError(
            f"run {row.id} has no report yet ({row.status})",
            hint="wait for it to finish, or resume it",
        )
    path = Path(row.report_path).with_suffix(".json")
    data = json.loads(await call.blocking(path.read_text, encoding="utf-8"))
    return RunReport(run_id=row.id, report=data if isinstance(data, dict) else {"report": data})


async def _cancel_run(call: Call[Any, Any]) -> RunOut:
    from orchestra.engine import cancel_run

    services = call.ctx.orchestra()
    row = await call.blocking(
        cancel_run,
        services.runs(),
        services.system_database_url,
        call.path["run_id"],
        actor=call.identity.actor,
    )
    await call.blocking(
        call.ctx.accounting().audit.append, call.identity.actor, "run.cancel", row.id, {}
    )
    return _out(row)


def _engine(call: Call[Any, Any]) -> RunHost:
    if call.ctx.engine is None:
        raise NotConfigured(
            "this server does not start runs",
            hint="start runs with `orchestra serve` (the gateway alone starts none)",
        )
    return call.ctx.engine


async def _refuse(call: Call[Any, Any], target: str, details: dict[str, Any]) -> None:
    """Audit a refusal the role table and the policies did not make."""
    await call.blocking(
        call.ctx.accounting().audit.append, call.identity.actor, "run.refused", target, details
    )


def _charged_to(call: Call[Any, Any]) -> tuple[str, str | None]:
    principal = call.identity.principal
    if principal.kind != "developer":
        raise NotARunner(
            f"{call.identity.actor} is not a developer a run can be charged to",
            hint="start runs with a developer's key or login",
        )
    listed = {d.name: d.unit for d in call.ctx.current_config.organisation.developers}
    team = listed.get(principal.id) or (principal.unit or "").rsplit("/", 1)[-1] or None
    return principal.id, team


async def _start_run(call: Call[Any, StartRun]) -> RunOut:
    body = call.body
    engine = _engine(call)
    developer, team = _charged_to(call)
    repo = await allowed_repository(call, body.repository, "run.refused")
    request = RunRequest(
        task=body.task,
        repo=repo,
        developer=developer,
        team=team,
        principal=policy_principal(call.identity),
        budget_usd=body.budget_usd,
        pipeline=body.pipeline,
    )
    run_id = await call.blocking(engine.start_run, request)
    details = {"repository": body.repository, "budget_usd": body.budget_usd}
    await call.blocking(
        call.ctx.accounting().audit.append, call.identity.actor, "run.start", run_id, details
    )
    row = await call.blocking(_runs(call).get, run_id)
    return _out(row)


async def _resume_run(call: Call[Any, ResumeRun]) -> RunOut:
    from orchestra.engine.gateway_link import run_owner

    engine = _engine(call)
    row = await call.blocking(_runs(call).get, call.path["run_id"])
    owner = await call.blocking(run_owner, call.ctx.accounting(), row.id)
    mine = owner is not None and owner == call.identity.principal.id
    admin = "admin" in call.identity.principal.roles
    if not (mine or admin or (owner is not None and call.leads(call.developer_unit(owner)))):
        await _refuse(call, row.id, {"reason": "not the run's owner", "owner": owner})
        raise NotYourRun(
            f"run {row.id} is {owner or 'no one'}'s; {call.identity.actor} may not continue it",
            hint="its owner, a lead of their unit or an admin may",
        )
    request = ResumeRequest(row.id, policy_principal(call.identity), call.body.budget_usd)
    resumed = await call.blocking(engine.resume, request)
    details = {"budget_usd": call.body.budget_usd}
    await call.blocking(
        call.ctx.accounting().audit.append, call.identity.actor, "run.resume", row.id, details
    )
    return _out(resumed)


_MISSING = (400, 401, 403, 404)
ENDPOINTS = [
    Endpoint(
        "POST",
        "/runs",
        "start_run",
        _start_run,
        "Start a run on an allow-listed repository, charged to the caller (audited)",
        RunOut,
        body=StartRun,
        status=201,
        tag="runs",
        statuses=(400, 401, 403, 404, 409, 503),
    ),
    Endpoint(
        "GET",
        "/runs",
        "read_runs",
        _list_runs,
        "Recent runs, newest first",
        RunList,
        query=Page,
        tag="runs",
    ),
    Endpoint(
        "GET",
        "/runs/{run_id}",
        "read_runs",
        _run_status,
        "A run's status and steps",
        RunStatus,
        tag="runs",
        statuses=_MISSING,
    ),
    Endpoint(
        "GET",
        "/runs/{run_id}/report",
        "read_runs",
        _run_report,
        "A finished run's report",
        RunReport,
        tag="runs",
        statuses=(*_MISSING, 409),
    ),
    Endpoint(
        "POST",
        "/runs/{run_id}/cancel",
        "cancel_run",
        _cancel_run,
        "Cancel a run; its branch keeps what was done (audited)",
        RunOut,
        tag="runs",
        statuses=(*_MISSING, 409),
    ),
    Endpoint(
        "POST",
        "/runs/{run_id}/resume",
        "start_run",
        _resume_run,
        "Continue a run: stopped by its budget (with a higher one) or whose worker is gone "
        "(audited)",
        RunOut,
        body=ResumeRun,
        tag="runs",
        statuses=(*_MISSING, 409, 503),
    ),
]
