"""``/api/v1/runs``: list runs, a run's status and steps, its report, cancel it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestra.errors import EngineError
from orchestra.server.api.endpoint import Call, Endpoint, Page, page_of

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
    created_at: datetime
    finished_at: datetime | None


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


_MISSING = (400, 401, 403, 404)
ENDPOINTS = [
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
]
