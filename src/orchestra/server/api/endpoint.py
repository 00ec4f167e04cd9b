"""Declaring endpoints: each names its action, its inputs and its answer as models.

An :class:`Endpoint` is turned into a Starlette route that, in order: gives the request an
id, authenticates the caller, checks the endpoint's action with the authoriser, parses
the path, query and body with Pydantic, calls the handler and writes the answer. Every
refusal and failure has one JSON shape (:class:`ErrorBody`). The OpenAPI document is
built from the same declarations (:mod:`orchestra.server.api.openapi`).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import anyio
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orchestra.errors import ApiError, EngineError, OrchestraError
from orchestra.identity import ANONYMOUS, ANY_UNIT, Identity
from orchestra.identity.actions import unit_within
from orchestra.server.api.context import ApiContext

log = logging.getLogger("orchestra.server")

PREFIX = "/api/v1"
MAX_BODY = 1024 * 1024

Q = TypeVar("Q", bound=BaseModel)
B = TypeVar("B", bound=BaseModel)
T = TypeVar("T")


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]
"""A stored time, answered with its offset: SQLite gives back the UTC times it was handed
without one, and OpenAPI's ``date-time`` needs it."""


class ErrorDetail(BaseModel):
    """What went wrong."""

    type: str = Field(description="invalid_request, not_authenticated, not_allowed, ...")
    message: str
    hint: str | None = None
    request_id: str


class ErrorBody(BaseModel):
    """Every error the API answers with."""

    error: ErrorDetail


class NoInput(BaseModel):
    """An endpoint without query parameters or body."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel):
    """Pagination of a list: ``limit`` items from ``offset``."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)


def page_of(items: Sequence[T], page: Page) -> tuple[list[T], int | None]:
    """The slice ``page`` asks for and the next offset (``None`` after the last page)."""
    chunk = list(items[page.offset : page.offset + page.limit])
    more = page.offset + page.limit < len(items)
    return chunk, (page.offset + page.limit if more else None)


_TYPES = {
    400: "invalid_request",
    401: "not_authenticated",
    403: "not_allowed",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int, message: str, hint: str | None, request_id: str, kind: str | None = None
) -> JSONResponse:
    """The one error format."""
    detail = ErrorDetail(
        type=kind or _TYPES.get(status, "internal_error" if status >= 500 else "invalid_request"),
        message=message,
        hint=hint,
        request_id=request_id,
    )
    headers = {"x-request-id": request_id}
    if status == 401:
        headers["www-authenticate"] = 'Bearer realm="orchestra"'
    return JSONResponse(ErrorBody(error=detail).model_dump(), status, headers=headers)


def status_of(exc: OrchestraError) -> int:
    """The HTTP status an error answers with: its own, else 404 for a missing run,
    409 for an engine refusal (a run already ended), 400 otherwise."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status < 600:
        return status
    if type(exc).__name__.endswith("NotFound"):
        return 404
    if isinstance(exc, EngineError):
        return 409
    return 400


@dataclass
class Call(Generic[Q, B]):
    """One request, parsed and authorised: what a handler gets."""

    ctx: ApiContext
    identity: Identity
    path: dict[str, str]
    query: Q
    body: B
    request: Request

    def require(self, action: str, unit: str | None) -> None:
        """Check ``action`` on ``unit`` (for a lead scoped to units: is it one it leads?)."""
        self.ctx.authorizer.require(self.identity, action, unit)

    def leads(self, unit: str | None) -> bool:
        """Whether the caller is a lead of unit path ``unit`` (or of a unit above it)."""
        principal = self.identity.principal
        if unit is None or "lead" not in principal.roles:
            return False
        return any(unit_within(unit, led) for led in principal.lead_of)

    def developer_unit(self, developer: str) -> str | None:
        """The unit path of ``developer``'s home unit (``None``: none, or not configured)."""
        return self.ctx.directory.budget_unit("developer", developer)

    async def blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking library call on a worker thread."""
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    async def audit(self, action: str, target: str, details: dict[str, Any]) -> None:
        """Append ``action`` on ``target`` to the audit log, by the authenticated caller."""
        log_ = self.ctx.accounting().audit
        await self.blocking(log_.append, self.identity.actor, action, target, details)


Handler = Callable[[Call[Any, Any]], Awaitable[Any]]


@dataclass
class Endpoint:
    """One API operation."""

    method: str
    path: str
    """Under ``/api/v1``, with ``{name}`` path parameters."""
    action: str | None
    """The action checked before the handler runs; ``None`` only with ``public=True``."""
    handler: Handler
    summary: str
    response: type[BaseModel] | None = None
    query: type[BaseModel] = NoInput
    body: type[BaseModel] | None = None
    status: int = 200
    public: bool = False
    """Served without authentication (the API root, the login redirect)."""
    tag: str = ""
    statuses: tuple[int, ...] = field(default=(400, 401, 403))
    """Error statuses documented for this operation (besides ``default``)."""
    absolute: bool = False
    """``path`` is served as is, not under ``/api/v1`` (``GET /api``)."""

    @property
    def full_path(self) -> str:
        """The path the route is served at."""
        return self.path if self.absolute else PREFIX + self.path

    @property
    def operation_id(self) -> str:
        """A stable name for the OpenAPI document."""
        return self.handler.__name__.lstrip("_")

    def route(self, ctx: ApiContext) -> Route:
        """The Starlette route serving this endpoint."""
        if self.action is None and not self.public:
            raise ValueError(f"{self.method} {self.full_path} declares no action")
        endpoint = self

        async def serve(request: Request) -> Response:
            return await _serve(endpoint, ctx, request)

        serve.__name__ = self.operation_id
        route = Route(self.full_path, serve, methods=[self.method])
        route.endpoint_spec = self  # type: ignore[attr-defined]  # read by the route-table test
        return route


async def _serve(endpoint: Endpoint, ctx: ApiContext, request: Request) -> Response:
    request_id = request.headers.get("x-request-id", "")[:64] or f"req_{secrets.token_hex(8)}"
    try:
        call = await _prepare(endpoint, ctx, request)
        result = await endpoint.handler(call)
    except OrchestraError as exc:
        return error_response(status_of(exc), exc.message, exc.hint, request_id)
    except ValidationError as exc:
        return error_response(400, _validation_message(exc), "see the API reference", request_id)
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        return error_response(500, "internal error", "see the server's log", request_id)
    if isinstance(result, Response):
        result.headers["x-request-id"] = request_id
        return result
    body = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    return JSONResponse(body, endpoint.status, headers={"x-request-id": request_id})


async def _prepare(endpoint: Endpoint, ctx: ApiContext, request: Request) -> Call[Any, Any]:
    identity = ANONYMOUS
    if not endpoint.public:
        identity = await ctx.authenticate(request.headers, request.cookies)
        assert endpoint.action is not None
        ctx.authorizer.require(identity, endpoint.action, ANY_UNIT)
    query = endpoint.query.model_validate(dict(request.query_params))
    body: BaseModel = NoInput()
    if endpoint.body is not None:
        body = endpoint.body.model_validate(await _json_body(request))
    path = {k: str(v) for k, v in request.path_params.items()}
    return Call(ctx, identity, path, query, body, request)


class BadBody(ApiError):
    """The request body is not a JSON object the endpoint accepts."""

    status = 400


async def _json_body(request: Request) -> Any:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise BadBody(f"the body is larger than {MAX_BODY} bytes", hint="send less")
    if not raw:
        raise BadBody("this endpoint needs a JSON body", hint="see the API reference")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadBody(f"the body is not JSON: {exc}", hint="send application/json") from exc


def _validation_message(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)
