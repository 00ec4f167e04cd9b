"""``/api/v1/knowledge``: change the server's knowledge store (what runs search).

The equivalents of ``orchestra kb add``, ``forget``, ``prune``, ``reembed`` and
``ingest`` on the store of the server (``knowledge.path``, else its state folder).
Adding an entry is any member's (secrets are redacted, private keys refused, as in the
CLI); removing, re-embedding and ingesting are a lead's or an admin's, and ingest reads
only a repository of ``server.repositories``, named, never a path. Each change is audited
(an entry's id, kind and project; never its text).
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestra.identity import register_action
from orchestra.server.api.endpoint import Call, Endpoint
from orchestra.server.api.repositories import allowed_repository

for _name, _roles in (
    ("add_knowledge", frozenset({"developer", "lead"})),
    ("manage_knowledge", frozenset({"lead"})),
):
    register_action(_name, _roles, mutating=True)

TAG = "knowledge"
KindName = Literal["decision", "convention", "pattern", "bug", "api", "code", "doc", "note"]
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_OPEN = threading.Lock()


class NewEntry(BaseModel):
    """An entry to store (``orchestra kb add``)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=100_000, pattern=r"\S")
    kind: KindName = "note"
    project: str = Field(pattern=NAME)
    team: str | None = Field(default=None, pattern=NAME)
    tags: list[str] = Field(default_factory=list, max_length=20)
    file: str | None = Field(default=None, min_length=1, max_length=500)


class Stored(BaseModel):
    """The stored entry's id and what was redacted from it."""

    id: str
    redactions: list[str]


class Forget(BaseModel):
    """Which source's entries to delete (``orchestra kb forget``): one of the fields."""

    model_config = ConfigDict(extra="forbid")
    file: str | None = Field(default=None, min_length=1, max_length=500)
    run: str | None = Field(default=None, min_length=1, max_length=100)
    agent: str | None = Field(default=None, min_length=1, max_length=100)
    session: str | None = Field(default=None, min_length=1, max_length=200)
    project: str | None = Field(default=None, pattern=NAME)

    @model_validator(mode="after")
    def _one_source(self) -> Forget:
        given = [f for f in ("file", "run", "agent", "session") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("name exactly one source: file, run, agent or session")
        return self


class Removed(BaseModel):
    """How many entries were deleted (by kind for a prune)."""

    removed: int
    by_kind: dict[str, int] = Field(default_factory=dict)


class Prune(BaseModel):
    """Delete entries older than their kind's retention, or ``days`` for ``kind``."""

    model_config = ConfigDict(extra="forbid")
    project: str | None = Field(default=None, pattern=NAME)
    kind: KindName | None = None
    days: int | None = Field(default=None, ge=0, le=100_000)

    @model_validator(mode="after")
    def _together(self) -> Prune:
        if (self.kind is None) != (self.days is None):
            raise ValueError("kind and days go together: pass both, or neither")
        return self


class Confirm(BaseModel):
    """``{}``: re-embed every entry with the configured model."""

    model_config = ConfigDict(extra="forbid")


class Reembedded(BaseModel):
    """How many entries now have vectors of ``model``."""

    reembedded: int
    model: str


class Ingest(BaseModel):
    """An allow-listed repository to index (``orchestra kb ingest``)."""

    model_config = ConfigDict(extra="forbid")
    repository: str = Field(min_length=1, max_length=100)
    project: str | None = Field(default=None, pattern=NAME)
    team: str | None = Field(default=None, pattern=NAME)


class Ingested(BaseModel):
    """What one ingest did."""

    project: str
    files_seen: int
    files_indexed: int
    files_unchanged: int
    files_deleted: int
    chunks_added: int
    chunks_removed: int
    chunks_refused: int


def _store(call: Call[Any, Any]) -> Any:
    """The server's knowledge store, opened once per application."""
    from orchestra.knowledge import KnowledgeStore

    ctx = call.ctx
    with _OPEN:
        if ctx.knowledge is None:
            ctx.knowledge = KnowledgeStore.open(None, ctx.current_config.knowledge)
        return ctx.knowledge


async def _audit(call: Call[Any, Any], action: str, target: str, details: dict[str, Any]) -> None:
    await call.blocking(
        call.ctx.accounting().audit.append, call.identity.actor, action, target, details
    )


async def _add(call: Call[Any, NewEntry]) -> Stored:
    from orchestra.knowledge.models import Source

    body = call.body
    store = await call.blocking(_store, call)

    def add() -> tuple[str, list[str]]:
        entry_id = store.add(
            body.text,
            body.kind,
            body.project,
            team=body.team,
            source=Source(file=body.file),
            tags=tuple(body.tags),
        )
        entry = store.get(entry_id)
        return str(entry_id), list(entry.redactions) if entry else []

    entry_id, redactions = await call.blocking(add)
    details = {"kind": body.kind, "project": body.project, "redactions": redactions}
    await _audit(call, "knowledge.add", entry_id, details)
    return Stored(id=entry_id, redactions=redactions)


async def _forget(call: Call[Any, Forget]) -> Removed:
    body = call.body
    source = body.model_dump(exclude_none=True, exclude={"project"})
    store = await call.blocking(_store, call)
    removed = await call.blocking(store.delete_by_source, project=body.project, **source)
    await _audit(call, "knowledge.forget", "knowledge", {**source, "removed": removed})
    return Removed(removed=removed)


async def _prune(call: Call[Any, Prune]) -> Removed:
    body = call.body
    retention = {body.kind: body.days} if body.kind is not None and body.days is not None else None
    store = await call.blocking(_store, call)
    result = await call.blocking(store.prune, retention_days=retention, project=body.project)
    details = {"project": body.project, "retention": retention, "removed": result.total}
    await _audit(call, "knowledge.prune", "knowledge", details)
    return Removed(removed=result.total, by_kind=dict(result.removed))


async def _reembed(call: Call[Any, Confirm]) -> Reembedded:
    store = await call.blocking(_store, call)
    count = await call.blocking(store.reembed)
    model = str(store.embedder.name)
    await _audit(call, "knowledge.reembed", "knowledge", {"entries": count, "model": model})
    return Reembedded(reembedded=count, model=model)


async def _ingest(call: Call[Any, Ingest]) -> Ingested:
    from orchestra.knowledge.ingest import ingest_repository

    body = call.body
    root = await allowed_repository(call, body.repository, "knowledge.refused")
    store = await call.blocking(_store, call)
    report = await call.blocking(
        ingest_repository, store, root, project=body.project or body.repository, team=body.team
    )
    out = Ingested.model_validate(report, from_attributes=True)
    await _audit(call, "knowledge.ingest", body.repository, out.model_dump())
    return out


_CHANGE = (400, 401, 403)
ENDPOINTS = [
    Endpoint(
        "POST",
        "/knowledge/entries",
        "add_knowledge",
        _add,
        "Store one entry (secrets redacted, private keys refused; audited without the text)",
        Stored,
        body=NewEntry,
        status=201,
        tag=TAG,
    ),
    Endpoint(
        "POST",
        "/knowledge/forget",
        "manage_knowledge",
        _forget,
        "Delete every entry from one source (audited)",
        Removed,
        body=Forget,
        tag=TAG,
    ),
    Endpoint(
        "POST",
        "/knowledge/prune",
        "manage_knowledge",
        _prune,
        "Delete entries older than their kind's retention (audited)",
        Removed,
        body=Prune,
        tag=TAG,
    ),
    Endpoint(
        "POST",
        "/knowledge/reembed",
        "manage_knowledge",
        _reembed,
        "Re-compute every vector with the configured embedding model (audited)",
        Reembedded,
        body=Confirm,
        tag=TAG,
    ),
    Endpoint(
        "POST",
        "/knowledge/ingest",
        "manage_knowledge",
        _ingest,
        "Index an allow-listed repository: code by function, docs by heading (audited)",
        Ingested,
        body=Ingest,
        tag=TAG,
        statuses=(400, 401, 403, 404),
    ),
]
