"""``/api/v1/keys``: gateway keys (list, create, revoke, rotate)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestra.accounting import KeyRecord
from orchestra.server.api.endpoint import Call, Endpoint, Page, page_of


class KeyOut(BaseModel):
    """A key without its secret."""

    id: str
    prefix: str
    developer: str
    team: str | None
    admin: bool
    name: str | None
    status: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyList(BaseModel):
    """A page of keys."""

    items: list[KeyOut]
    next_offset: int | None


class KeyCreate(BaseModel):
    """A new key's owner."""

    model_config = ConfigDict(extra="forbid")
    developer: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    team: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    admin: bool = False
    name: str | None = Field(default=None, max_length=100)


class KeyRotate(BaseModel):
    """How long the old key keeps working."""

    model_config = ConfigDict(extra="forbid")
    grace_s: int = Field(default=3600, ge=0, le=30 * 86400)


class KeySecret(BaseModel):
    """A created key: the secret is shown this once."""

    secret: str
    key: KeyOut


def _out(record: KeyRecord) -> KeyOut:
    return KeyOut(
        id=record.id,
        prefix=record.prefix,
        developer=record.developer,
        team=record.team,
        admin=record.admin,
        name=record.name,
        status=record.status(datetime.now(UTC)),
        created_at=record.created_at,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
    )


def _key_unit(call: Call[Any, Any], record: KeyRecord) -> str | None:
    directory = call.ctx.directory
    return directory.unit_path(record.team) if record.team else None


def _visible(call: Call[Any, Any], record: KeyRecord) -> bool:
    """A non-admin sees their own keys; a lead also the keys charged to the units they lead
    (and below) and those of the developers whose home unit is one of them."""
    if record.developer == call.identity.principal.id:
        return True
    return call.leads(_key_unit(call, record)) or call.leads(call.developer_unit(record.developer))


async def _list_keys(call: Call[Page, Any]) -> KeyList:
    records = await call.blocking(call.ctx.accounting().keys.list)
    if "admin" not in call.identity.principal.roles:  # others see their own keys, and a
        records = [r for r in records if _visible(call, r)]  # lead its units' keys too
    items, nxt = page_of(records, call.query)
    return KeyList(items=[_out(r) for r in items], next_offset=nxt)


async def _create_key(call: Call[Any, KeyCreate]) -> KeySecret:
    body = call.body
    call.require("manage_keys", call.ctx.directory.unit_path(body.team))
    if body.admin:
        call.require("manage_org", None)  # only an admin hands out admin keys
    keys = call.ctx.accounting().keys
    secret, record = await call.blocking(
        keys.create, body.developer, body.team, body.admin, body.name, actor=call.identity.actor
    )
    return KeySecret(secret=secret, key=_out(record))


async def _revoke_key(call: Call[Any, Any]) -> KeyOut:
    keys = call.ctx.accounting().keys
    record = await call.blocking(keys.get, call.path["key_id"])
    call.require("manage_keys", _key_unit(call, record))
    record = await call.blocking(keys.revoke, record.id, actor=call.identity.actor)
    return _out(record)


async def _rotate_key(call: Call[Any, KeyRotate]) -> KeySecret:
    keys = call.ctx.accounting().keys
    record = await call.blocking(keys.get, call.path["key_id"])
    call.require("manage_keys", _key_unit(call, record))
    grace = timedelta(seconds=call.body.grace_s)
    secret, new = await call.blocking(keys.rotate, record.id, grace, actor=call.identity.actor)
    return KeySecret(secret=secret, key=_out(new))


ENDPOINTS = [
    Endpoint(
        "GET",
        "/keys",
        "read_keys",
        _list_keys,
        "List keys (others' only for an admin)",
        KeyList,
        query=Page,
        tag="keys",
    ),
    Endpoint(
        "POST",
        "/keys",
        "manage_keys",
        _create_key,
        "Create a key (audited)",
        KeySecret,
        body=KeyCreate,
        status=201,
        tag="keys",
    ),
    Endpoint(
        "POST",
        "/keys/{key_id}/revoke",
        "manage_keys",
        _revoke_key,
        "Revoke a key at once (audited)",
        KeyOut,
        tag="keys",
        statuses=(400, 401, 403, 404),
    ),
    Endpoint(
        "POST",
        "/keys/{key_id}/rotate",
        "manage_keys",
        _rotate_key,
        "Issue a new key; the old one works for grace_s (audited)",
        KeySecret,
        body=KeyRotate,
        status=201,
        tag="keys",
        statuses=(400, 401, 403, 404),
    ),
]
