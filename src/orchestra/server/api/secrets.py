"""``/api/v1/secrets``: upstream credentials, encrypted at rest on the server (admins only).

The value travels only in a request body (TLS in front of the server is the operator's
job); it is encrypted with the server's key as ``orchestra secrets set`` does
(:class:`~orchestra.accounting.SecretStore` under the server's state folder), never
logged, echoed in an answer or written to the audit log, whose entry names only the
secret. The audit entry commits only if the store was written.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestra.accounting import SecretBox, SecretStore
from orchestra.errors import ApiError
from orchestra.server.api.endpoint import Call, Endpoint

NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
"""A secret's name, as ``orchestra secrets set`` accepts it."""
TAG = "secrets"


class SecretValue(BaseModel):
    """The credential to store (never answered back)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    value: str = Field(min_length=1, max_length=10_000, pattern=r"^\S+$")


class SecretNames(BaseModel):
    """The names of the stored credentials (never their values)."""

    items: list[str]


class SecretChanged(BaseModel):
    """What was done to a secret."""

    name: str
    stored: bool


class UnknownSecret(ApiError):
    """No secret is stored under that name."""

    status = 404


class BadSecretName(ApiError):
    """A secret's name that ``orchestra secrets set`` would refuse too."""

    status = 400


def _store(call: Call[Any, Any]) -> SecretStore:
    home = call.ctx.orchestra().home
    return SecretStore(SecretBox.from_home(home), home / "secrets.json")


def _name(call: Call[Any, Any]) -> str:
    import re

    name = call.path["name"]
    if not re.match(NAME, name):
        raise BadSecretName(f"invalid secret name {name!r}", hint="use letters, digits, - and _")
    return name


async def _list_secrets(call: Call[Any, Any]) -> SecretNames:
    store = _store(call)
    return SecretNames(items=await call.blocking(store.names))


async def _set_secret(call: Call[Any, SecretValue]) -> SecretChanged:
    name, store = _name(call), _store(call)
    value = call.body.value

    def write() -> None:
        with call.ctx.accounting().audit.transaction() as audit:
            audit.append(call.identity.actor, "secret.set", name, {})  # not if the store fails
            store.set(name, value)

    await call.blocking(write)
    return SecretChanged(name=name, stored=True)


async def _remove_secret(call: Call[Any, Any]) -> SecretChanged:
    name, store = _name(call), _store(call)

    def remove() -> None:
        with call.ctx.accounting().audit.transaction() as audit:
            audit.append(call.identity.actor, "secret.remove", name, {})  # not if none was
            if not store.delete(name):
                raise UnknownSecret(f"no stored secret named {name!r}", hint="GET /api/v1/secrets")

    await call.blocking(remove)
    return SecretChanged(name=name, stored=False)


_STATUSES = (400, 401, 403, 404)
ENDPOINTS = [
    Endpoint(
        "GET",
        "/secrets",
        "manage_secrets",
        _list_secrets,
        "Names of the stored upstream credentials (never their values)",
        SecretNames,
        tag=TAG,
    ),
    Endpoint(
        "PUT",
        "/secrets/{name}",
        "manage_secrets",
        _set_secret,
        "Store an upstream credential, encrypted at rest (audited without the value)",
        SecretChanged,
        body=SecretValue,
        tag=TAG,
    ),
    Endpoint(
        "DELETE",
        "/secrets/{name}",
        "manage_secrets",
        _remove_secret,
        "Delete a stored upstream credential (audited)",
        SecretChanged,
        tag=TAG,
        statuses=_STATUSES,
    ),
]
