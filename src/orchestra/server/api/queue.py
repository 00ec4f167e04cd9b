"""``/api/v1/queue``: the merge queue — list it, queue a branch or a run that succeeded,
work through a repository's queue, drop an entry (docs/merge-queue.md, docs/api.md).

Repositories are named through ``server.repositories``, never by path. Landing runs the
repository's tests on the server, so it is a background task: queueing (with ``land``) and
``POST /api/v1/queue/run`` answer 202 at once, and ``GET /api/v1/queue/{entry_id}`` shows
the entry move from ``queued`` to ``landed`` (or ``conflict``, ``failed``, ``error`` with
its reason). The lander is the library's (one per repository at a time, across processes).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse

from orchestra.errors import ApiError
from orchestra.identity import register_action
from orchestra.landing import (
    Lander,
    QueueEntry,
    drop,
    enqueue,
    entries,
    find_run,
    get_entry,
    repository_key,
    run_branch,
    target_branch,
)
from orchestra.server.api.endpoint import Call, Endpoint, Page, Timestamp, page_of
from orchestra.server.api.repositories import allowed_repository, repository_name

log = logging.getLogger("orchestra.server")

LAND = register_action("land", frozenset({"lead", "developer"}), mutating=True).name
"""Queueing branches to land, working through a queue, dropping an entry (not viewers)."""
REFUSED = "queue.refused"
_BRANCH = r"^[^\s~^:?*\[\\]+$"
"""A branch name: no whitespace nor what git refuses in one (git checks the rest)."""


class QueueEntryOut(BaseModel):
    """A branch in a repository's merge queue and what became of it."""

    id: int
    repo: str
    run_id: str | None
    branch: str
    onto: str
    status: str
    reason: str | None
    files: list[str]
    overlaps: dict[str, list[str]]
    landed_commit: str | None
    requested_by: str
    created_at: Timestamp | None
    finished_at: Timestamp | None


class QueueList(BaseModel):
    """A page of entries, oldest first."""

    items: list[QueueEntryOut]
    next_offset: int | None


class QueueQuery(Page):
    """Which entries: all, or those of one status."""

    status: Literal["queued", "landing", "landed", "conflict", "failed", "error"] | None = None


class LandRun(BaseModel):
    """Where a run's branch lands, and whether to start landing now."""

    model_config = ConfigDict(extra="forbid")
    onto: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=_BRANCH,
        description="default: the checkout's current branch",
    )
    land: bool = Field(default=True, description="start landing now (else only queue it)")


class QueueAdd(LandRun):
    """A branch of an allow-listed repository to queue."""

    repository: str = Field(
        min_length=1, max_length=100, description="a name from server.repositories"
    )
    branch: str = Field(min_length=1, max_length=255, pattern=_BRANCH)


class QueueRun(BaseModel):
    """Which repository's queue to work through."""

    model_config = ConfigDict(extra="forbid")
    repository: str = Field(
        min_length=1, max_length=100, description="a name from server.repositories"
    )


class QueueRunOut(BaseModel):
    """The entries the background lander will work through (others added meanwhile too)."""

    repository: str
    queued: list[int]


class BadEntryId(ApiError):
    """A queue entry id that is not a whole number."""

    status = 400


def _out(entry: QueueEntry) -> QueueEntryOut:
    return QueueEntryOut.model_validate(entry.to_dict())


def _entry_id(call: Call[Any, Any]) -> int:
    text = call.path["entry_id"]
    if not text.isdigit() or len(text) > 18:
        raise BadEntryId(f"queue entry id {text!r} is not a whole number", hint="GET /api/v1/queue")
    return int(text)


def _landing(call: Call[Any, Any], repo: str) -> BackgroundTask:
    """The lander working through ``repo``'s queue after the answer is sent."""
    services = call.ctx.orchestra()
    lander = Lander.for_config(services.database, call.ctx.current_config)

    async def land() -> None:
        try:
            await anyio.to_thread.run_sync(lander.process, repo)
        except Exception:  # the answer is sent: the entry records "error", the log the rest
            log.exception("landing the queue of %s failed", repo)

    return BackgroundTask(land)


def _accepted(body: BaseModel, background: BackgroundTask | None) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), 202, background=background)


async def _list_queue(call: Call[QueueQuery, Any]) -> QueueList:
    db = call.ctx.orchestra().database
    found = await call.blocking(entries, db, status=call.query.status)
    chunk, more = page_of(found, call.query)
    return QueueList(items=[_out(e) for e in chunk], next_offset=more)


async def _queue_entry(call: Call[Any, Any]) -> QueueEntryOut:
    entry = await call.blocking(get_entry, call.ctx.orchestra().database, _entry_id(call))
    return _out(entry)


async def _queue_branch(call: Call[Any, QueueAdd]) -> JSONResponse:
    body = call.body
    repo = await allowed_repository(call, body.repository, REFUSED)
    onto = await call.blocking(target_branch, repo, body.onto)
    db = call.ctx.orchestra().database
    entry = await call.blocking(
        enqueue, db, str(repo), body.branch, onto, requested_by=call.identity.actor
    )
    details = {"repository": body.repository, "branch": body.branch, "onto": onto}
    await call.audit("queue.add", str(entry.id), details)
    return _accepted(_out(entry), _landing(call, entry.repo) if body.land else None)


async def _land_run(call: Call[Any, LandRun]) -> JSONResponse:
    db = call.ctx.orchestra().database
    run_id = await call.blocking(find_run, db, call.path["run_id"])
    repo, branch = await call.blocking(run_branch, db, run_id)
    name = await repository_name(call, repo, f"run {run_id}", REFUSED)
    onto = await call.blocking(target_branch, Path(repository_key(repo)), call.body.onto)
    entry = await call.blocking(
        enqueue, db, repo, branch, onto, requested_by=call.identity.actor, run_id=run_id
    )
    details = {"repository": name, "branch": branch, "onto": onto, "run_id": run_id}
    await call.audit("queue.add", str(entry.id), details)
    return _accepted(_out(entry), _landing(call, entry.repo) if call.body.land else None)


async def _run_queue(call: Call[Any, QueueRun]) -> JSONResponse:
    repo = await allowed_repository(call, call.body.repository, REFUSED)
    db = call.ctx.orchestra().database
    waiting = await call.blocking(entries, db, str(repo), status="queued")
    ids = [e.id for e in waiting]
    await call.audit("queue.run", call.body.repository, {"queued": ids})
    out = QueueRunOut(repository=call.body.repository, queued=ids)
    return _accepted(out, _landing(call, repository_key(repo)) if ids else None)


async def _drop_entry(call: Call[Any, Any]) -> QueueEntryOut:
    db = call.ctx.orchestra().database
    entry_id = _entry_id(call)
    entry = await call.blocking(get_entry, db, entry_id)
    name = await repository_name(call, entry.repo, f"queue entry {entry_id}", REFUSED)
    dropped = await call.blocking(drop, db, entry_id)
    details = {"repository": name, "branch": dropped.branch, "status": dropped.status}
    await call.audit("queue.drop", str(entry_id), details)
    return _out(dropped)


_CHANGES = (400, 401, 403, 404, 409)
ENDPOINTS = [
    Endpoint(
        "GET",
        "/queue",
        "read_runs",
        _list_queue,
        "The merge queue's entries, oldest first, with each refusal's reason and files",
        QueueList,
        query=QueueQuery,
        tag="runs",
    ),
    Endpoint(
        "POST",
        "/queue",
        LAND,
        _queue_branch,
        "Queue a branch of an allow-listed repository; with land (the default) the server "
        "lands it in the background: rebase, test, fast-forward (audited)",
        QueueEntryOut,
        body=QueueAdd,
        status=202,
        tag="runs",
        statuses=_CHANGES,
    ),
    Endpoint(
        "GET",
        "/queue/{entry_id}",
        "read_runs",
        _queue_entry,
        "One queue entry: where landing it stands, or why it was refused",
        QueueEntryOut,
        tag="runs",
        statuses=(400, 401, 403, 404),
    ),
    Endpoint(
        "DELETE",
        "/queue/{entry_id}",
        LAND,
        _drop_entry,
        "Drop an entry a person has dealt with (not one being landed right now; audited)",
        QueueEntryOut,
        tag="runs",
        statuses=_CHANGES,
    ),
    Endpoint(
        "POST",
        "/queue/run",
        LAND,
        _run_queue,
        "Work through an allow-listed repository's queue in the background (audited)",
        QueueRunOut,
        body=QueueRun,
        status=202,
        tag="runs",
        statuses=(400, 401, 403, 404),
    ),
    Endpoint(
        "POST",
        "/runs/{run_id}/land",
        LAND,
        _land_run,
        "Queue a run that succeeded to land on its repository (allow-listed); with land "
        "(the default) the server lands it in the background (audited)",
        QueueEntryOut,
        body=LandRun,
        status=202,
        tag="runs",
        statuses=_CHANGES,
    ),
]
