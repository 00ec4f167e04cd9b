"""The gateway's ASGI application: endpoints, bodies, errors in the client's format.

A plain ASGI callable with a dictionary router rather than a framework: the model-call
path is the hot path, and every layer it skips is latency it does not add.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from orchestra.config.schema import OrchestraConfig
from orchestra.errors import OrchestraError
from orchestra.gateway.asgi import Message, Receive, Scope, Send, headers_of, read_body
from orchestra.gateway.calls import ModelCallHandler
from orchestra.gateway.errors import (
    BadRequest,
    Forbidden,
    GatewayHTTPError,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
)
from orchestra.gateway.formats import WireFormat, error_body, error_headers
from orchestra.gateway.idempotency import KEY_HEADER, IdempotentCalls
from orchestra.gateway.runs import RUNS_END_PATH, RUNS_PATH, end_run, open_run
from orchestra.gateway.service import Gateway
from orchestra.providers.models import models_list_body

log = logging.getLogger("orchestra.gateway")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
StartupHook = Callable[[], Awaitable[None]]

GATEWAY_PATHS = frozenset(
    {
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/chat/completions",
        "/v1/models",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/orchestra/spend",
        "/v1/orchestra/admin/reload",
        RUNS_PATH,
        RUNS_END_PATH,
    }
)


def client_format(path: str, headers: dict[str, str]) -> WireFormat:
    """The wire format to answer in: by endpoint, else by the client's auth style."""
    if path.startswith("/v1/chat/"):
        return WireFormat.OPENAI
    if path.startswith("/v1/messages"):
        return WireFormat.ANTHROPIC
    if "x-api-key" in headers or "anthropic-version" in headers:
        return WireFormat.ANTHROPIC
    return WireFormat.OPENAI


async def send_json(
    send: Send, status: int, payload: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


UNREAD_BODY_CLOSE_BYTES = 64 * 1024
"""A request refused before its body was read (no key, too large, not JSON) whose body is
larger than this (or of unknown length) is answered with ``connection: close``: the client
stops sending instead of the server reading and discarding the rest."""
_REFUSED_UNREAD = (Unauthenticated, PayloadTooLarge, UnsupportedMediaType)


def _body_left_unread(headers: dict[str, str]) -> bool:
    if "transfer-encoding" in headers:
        return True
    declared = headers.get("content-length", "")
    return declared.isdigit() and int(declared) > UNREAD_BODY_CLOSE_BYTES


async def send_error(
    send: Send, fmt: WireFormat, error: GatewayHTTPError, *, close: bool = False
) -> None:
    body = error_body(fmt, error)
    headers = [*error_headers(error), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GatewayApp:
    """ASGI app serving the gateway endpoints; other paths go to ``fallback`` (if any)."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        fallback: ASGIApp | None = None,
        config_loader: Callable[[], OrchestraConfig] | None = None,
        startup_hooks: list[StartupHook] | None = None,
        shutdown_hooks: list[StartupHook] | None = None,
    ) -> None:
        self.gateway = gateway
        self.fallback = fallback
        self.config_loader = config_loader
        self.startup_hooks: list[StartupHook] = startup_hooks if startup_hooks is not None else []
        """Coroutines run at startup after ledger reconciliation (e.g. resuming runs)."""
        self.shutdown_hooks: list[StartupHook] = (
            shutdown_hooks if shutdown_hooks is not None else []
        )
        """Coroutines run at shutdown after the gateway closed its connections."""
        self.calls = ModelCallHandler(gateway)
        self.idempotent = IdempotentCalls(gateway, self.calls, gateway.idempotency)
        self._routes: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ("POST", "/v1/messages"): self._messages,
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/messages/count_tokens"): self._count_tokens,
            ("GET", "/v1/models"): self._models,
            ("GET", "/healthz"): self._healthz,
            ("GET", "/readyz"): self._readyz,
            ("GET", "/metrics"): self._metrics,
            ("GET", "/v1/orchestra/spend"): self._spend,
            ("POST", "/v1/orchestra/admin/reload"): self._reload,
            ("POST", RUNS_PATH): self._open_run,
            ("POST", RUNS_END_PATH): self._end_run,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind != "http":
            if self.fallback is not None:
                await self.fallback(scope, receive, send)
            return
        path: str = scope["path"]
        handler = self._routes.get((scope["method"], path))
        if handler is None and path not in GATEWAY_PATHS and self.fallback is not None:
            await self.fallback(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        headers = headers_of(scope)
        fmt = client_format(path, headers)
        t0 = self.gateway.deps.clock()
        try:
            if handler is None:
                if path in GATEWAY_PATHS:
                    raise GatewayHTTPError(
                        f"method {scope['method']} is not allowed on {path}",
                        status=405,
                        error_type="invalid_request_error",
                    )
                raise NotFound(f"no endpoint at {path}", hint="see docs/gateway.md")
            await handler(scope, receive, tracking_send)
        except GatewayHTTPError as exc:
            if not exc.counted:
                elapsed = self.gateway.deps.clock() - t0
                self.gateway.metrics.request(fmt.value, exc.status, "", elapsed)
            if not started:
                close = (handler is None or isinstance(exc, _REFUSED_UNREAD)) and (
                    _body_left_unread(headers)
                )
                await send_error(send, fmt, exc, close=close)
        except OrchestraError as exc:
            # Wire-format errors carry their own status (400 client's fault, 502 upstream's).
            status = getattr(exc, "status", 500)
            err = GatewayHTTPError(exc.message, hint=exc.hint, status=status)
            err.error_type = getattr(exc, "error_type", err.error_type)
            if not started:
                await send_error(send, fmt, err)
        except Exception:
            log.exception("unexpected error serving %s", path)
            if not started:
                await send_error(
                    send,
                    fmt,
                    GatewayHTTPError("internal gateway error", hint="see the gateway's log"),
                )

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gateway.startup()
                    for hook in self.startup_hooks:
                        await hook()
                except Exception as exc:
                    log.exception("gateway startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.aclose()
                for hook in self.shutdown_hooks:
                    await hook()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._model_call(scope, receive, send, WireFormat.ANTHROPIC)

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._model_call(scope, receive, send, WireFormat.OPENAI)

    async def _model_call(
        self, scope: Scope, receive: Receive, send: Send, fmt: WireFormat
    ) -> None:
        key = headers_of(scope).get(KEY_HEADER)
        if key is None:
            await self.calls.handle(scope, receive, send, fmt)
        else:  # kept in the shared database: answered once (docs/gateway.md)
            await self.idempotent.handle(scope, receive, send, fmt, key)

    async def _count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.calls.count_tokens(scope, receive, send)

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = await self.gateway.authenticate(headers_of(scope))
        snapshot = self.gateway.snapshot
        names = snapshot.routing.names(caller.team)
        if caller.allowed_models is not None:
            names = [n for n in names if n in caller.allowed_models]
        body = models_list_body(names, created=snapshot.loaded_at, owned_by="orchestra")
        await send_json(send, 200, body)

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, {"status": "ok"})

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            db_ok = await self.gateway.blocking(self.gateway.accountant.healthy)
        except Exception:
            db_ok = False
        ready = db_ok and self.gateway.started
        await send_json(
            send,
            200 if ready else 503,
            {
                "status": "ready" if ready else "not ready",
                "database": "ok" if db_ok else "unreachable",
                "config_loaded_at": self.gateway.snapshot.loaded_at.isoformat(),
                "started": self.gateway.started,
                "providers_without_credential": list(self.gateway.snapshot.missing_credentials),
                "replica": f"{socket.gethostname()}:{os.getpid()}",  # which process answered
                "shared_state": None
                if self.gateway.shared is None
                else ("ok" if self.gateway.shared.up else "unreachable"),
            },
        )

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.gateway.snapshot.config.gateway.metrics_public:
            self.gateway.require_admin(await self.gateway.authenticate(headers_of(scope)))
        try:
            headroom = await self.gateway.blocking(self.gateway.accountant.headroom)
        except Exception:
            log.exception("budget headroom unavailable for /metrics")
            headroom = []
        # Rendered and encoded whole before the status goes out: a scrape answers all of
        # its metrics or an error, never a 200 cut short.
        text = await self.gateway.metrics_text(headroom)
        text += self.gateway.accountant.exposition()  # accounting's counters (ledger)
        body = text.encode()
        headers = [
            (b"content-type", b"text/plain; version=0.0.4; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _spend(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = await self.gateway.authenticate(headers_of(scope))
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        wanted = query.get("developer", [None])[0]
        everyone = query.get("all", ["0"])[0] in ("1", "true")
        if caller.admin:
            developer = None if (everyone or wanted is None) else wanted
        else:
            if everyone or (wanted is not None and wanted != caller.developer):
                raise Forbidden(
                    "only an admin key may see other developers' spend",
                    hint="drop the developer/all parameters to see your own spend",
                )
            developer = caller.developer
        result = await self.gateway.blocking(self.gateway.accountant.spend, developer)
        await send_json(send, 200, result)

    async def _open_run(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, await open_run(self.gateway, scope, receive))

    async def _end_run(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, await end_run(self.gateway, scope, receive))

    async def _reload(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = await self.gateway.authenticate(headers_of(scope))
        self.gateway.require_admin(caller)
        await read_body(receive, headers_of(scope), 1024 * 1024, require_json=False)
        if self.config_loader is None:
            raise BadRequest(
                "this gateway was started without a configuration file to reload",
                hint="start it with `orchestra gateway` in a folder with orchestra.yaml",
            )
        config = await self.gateway.blocking(self.config_loader)
        await self.gateway.blocking(self.gateway.reload, config, caller)
        await self.gateway.blocking(
            self.gateway.accountant.audit, caller, "gateway.reload", "config", {}
        )
        snapshot = self.gateway.snapshot
        await send_json(
            send,
            200,
            {
                "reloaded": True,
                "loaded_at": snapshot.loaded_at.isoformat(),
                # Their models answer 502 naming the provider, without being called.
                "providers_without_credential": list(snapshot.missing_credentials),
            },
        )
