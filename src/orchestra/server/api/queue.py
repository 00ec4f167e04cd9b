"""``/api/v1/queue``: the merge queue's entries, read-only (landing is ``orchestra land``;
see docs/merge-queue.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from orchestra.landing import entries
from orchestra.server.api.endpoint import Call, Endpoint, Page, page_of


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
    created_at: datetime | None
    finished_at: datetime | None


class QueueList(BaseModel):
    """A page of entries, oldest first."""

    items: list[QueueEntryOut]
    next_offset: int | None


class QueueQuery(Page):
    """Which entries: all, or those of one status."""

    status: Literal["queued", "landing", "landed", "conflict", "failed", "error"] | None = None


async def _list_queue(call: Call[QueueQuery, Any]) -> QueueList:
    db = call.ctx.orchestra().database
    found = await call.blocking(entries, db, status=call.query.status)
    chunk, more = page_of(found, call.query)
    return QueueList(
        items=[QueueEntryOut.model_validate(e.to_dict()) for e in chunk], next_offset=more
    )


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
]
