"""One model call through the gateway, from request bytes to the ledger entry.

auth -> parse -> route -> limits and budget reservation -> upstream (retries, fallbacks,
circuit breakers) -> response or stream (translated if the upstream speaks the other
format) -> settle the reservation and append the ledger entry.

Streams are relayed by :class:`~orchestra.gateway.streaming.StreamRelay`; the ASGI plumbing
(body, headers, message types) is in :mod:`orchestra.gateway.asgi`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import MutableMapping
from typing import Any

from orchestra.gateway.accounts import CallRecord
from orchestra.gateway.asgi import Receive, Send, headers_of, read_body
from orchestra.gateway.errors import (
    BadRequest,
    GatewayHTTPError,
    LimitRefused,
    UpstreamFailed,
)
from orchestra.gateway.formats import WireFormat
from orchestra.gateway.requests import (
    ModelRequest,
    attribution,
    check_model_name,
    check_unicode,
    encode_body,
    parse_json_object,
    parse_model_request,
    upstream_body,
)
from orchestra.gateway.routing import Route, Target
from orchestra.gateway.service import Gateway
from orchestra.gateway.streaming import StreamRelay
from orchestra.gateway.transport import UpstreamConnectionError
from orchestra.gateway.upstream import (
    CallPlan,
    OpenedReply,
    ProviderAuthFailed,
    UpstreamClientError,
    missing_credential,
    upstream_headers,
)
from orchestra.providers import anthropic as anthropic_wire
from orchestra.providers import estimate_input_tokens, translate
from orchestra.providers import openai as openai_wire
from orchestra.providers.errors import WireFormatError
from orchestra.providers.usage import Usage

log = logging.getLogger("orchestra.gateway")

_PATHS = {WireFormat.ANTHROPIC: "/v1/messages", WireFormat.OPENAI: "/chat/completions"}


class ModelCallHandler:
    """Serves ``/v1/messages`` and ``/v1/chat/completions`` (and ``count_tokens``)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._relay = StreamRelay(gateway)

    async def _estimate(self, request: ModelRequest) -> int:
        large = self.gateway.snapshot.config.gateway.large_input_bytes
        if len(request.raw) > large:
            return await self.gateway.blocking(
                estimate_input_tokens, request.body, request.fmt.value
            )
        return estimate_input_tokens(request.body, request.fmt.value)

    async def handle(
        self, scope: MutableMapping[str, Any], receive: Receive, send: Send, fmt: WireFormat
    ) -> None:
        """Serve one model call in ``fmt``, whole or streamed, and account for it."""
        gw = self.gateway
        deps = gw.deps
        t0 = deps.clock()
        headers = headers_of(scope)
        snapshot = gw.snapshot
        # The key first: a client without one never gets its body read (held in memory).
        caller = await gw.authenticate(headers)
        raw = await read_body(receive, headers, snapshot.config.gateway.max_body_bytes)
        request = parse_model_request(raw, fmt)
        agent = attribution(headers, "x-orchestra-agent")
        # Only a run's key (the engine's) may choose its route by the agent it names.
        route = snapshot.routing.resolve(
            request.model, caller.team, agent if caller.run_id is not None else None
        )
        gw.check_allowed(caller, route)
        route = await gw.govern(caller, route)
        label = _label(route)
        record = CallRecord(
            request_id=deps.new_id(),
            started_at=deps.now(),
            caller=caller,
            client_format=fmt.value,
            requested_model=request.model,
            tier=route.tier,
            agent=agent or request.agent,
            run_id=attribution(headers, "x-orchestra-run"),
            step=attribution(headers, "x-orchestra-step"),
            stream=request.stream,
            rule=route.rule,
        )
        input_tokens = await self._estimate(request)
        # Raises UnpricedModel (503) before any upstream call: unknown is never free.
        usd = gw.reservation_usd(route, input_tokens, request.max_tokens)
        record.reserved_usd = usd
        try:
            reservation = await gw.admit(
                caller,
                record.run_id,
                route.primary.model,
                input_tokens + request.max_tokens,
                usd,
            )
        except LimitRefused as exc:
            gw.accountant.refused(record, exc)  # its ledger row, queued (issue 16 #6)
            gw.metrics.request(fmt.value, 429, label, deps.clock() - t0)
            exc.counted = True
            raise
        plan = CallPlan(
            build=lambda target: self._build(request, target),
            query=scope.get("query_string", b"").decode("latin-1"),
            client_headers=headers,
        )
        gw.accountant.journal_call(reservation, record)  # before the upstream (issue 16 #5)
        try:
            opened = await snapshot.caller.open(route, plan, record)
        except BaseException as exc:
            record.outcome = "client_error" if _clients_fault(exc) else "upstream_error"
            record.status = getattr(exc, "status", None)
            record.error = getattr(exc, "message", type(exc).__name__)
            record.latency_ms = round((deps.clock() - t0) * 1000, 3)
            await asyncio.shield(gw.accountant.finish(reservation, record))
            gw.metrics.request(fmt.value, record.status or 500, label, deps.clock() - t0)
            if isinstance(exc, UpstreamClientError):
                await self._send_upstream_error(send, fmt, exc)
                return
            if isinstance(exc, GatewayHTTPError):
                exc.counted = True
            raise
        record.served_model = opened.target.model
        record.provider = opened.target.provider
        ctype = opened.response.headers.get("content-type", "")
        try:
            if request.stream and "text/event-stream" in ctype:
                await self._relay.relay(
                    receive,
                    send,
                    request,
                    opened,
                    record,
                    reservation,
                    input_tokens,
                    t0,
                    headers=self._response_headers(
                        route, opened.target, record, b"text/event-stream"
                    ),
                    label=label,
                )
            else:
                await self._whole(send, request, route, opened, record, reservation, t0)
        finally:
            response = opened.response
            if response.at_eof():
                response.release()  # fully read: the connection goes back to the pool
            else:
                response.close()  # abandoned mid-body: stop the upstream
            opened.finish()  # the upstream's slot, if it is limited

    def _build(self, request: ModelRequest, target: Target) -> tuple[str, bytes]:
        """Path and body for ``target``: same format as-is, else translated."""
        if target.kind is request.fmt:
            return _PATHS[target.kind], upstream_body(request, target.upstream_name)
        if request.fmt is WireFormat.ANTHROPIC:
            body = translate.anthropic_to_openai_request(request.body)
            if request.stream:
                body["stream_options"] = {"include_usage": True}
        else:
            body = translate.openai_to_anthropic_request(request.body)
        body["model"] = target.upstream_name
        return _PATHS[target.kind], encode_body(body)

    def _response_headers(
        self, route: Route, target: Target, record: CallRecord, ctype: bytes
    ) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", ctype),
            (b"x-orchestra-request-id", record.request_id.encode()),
            (b"x-orchestra-served-model", target.model.encode()),
        ]
        if route.tier:
            headers.append((b"x-orchestra-tier", route.tier.encode()))
        if route.rule:
            headers.append((b"x-orchestra-route", route.rule.encode()))
        if target.model != route.primary.model:
            headers.append((b"x-orchestra-fallback", b"1"))
        return headers

    async def _whole(
        self,
        send: Send,
        request: ModelRequest,
        route: Route,
        opened: OpenedReply,
        record: CallRecord,
        reservation: Any,
        t0: float,
    ) -> None:
        gw = self.gateway
        deps = gw.deps
        target = opened.target
        try:
            data = await opened.response.read()
        except (UpstreamConnectionError, TimeoutError) as exc:
            record.outcome = "upstream_error"
            record.error = f"reading the response failed: {type(exc).__name__}"
            record.latency_ms = round((deps.clock() - t0) * 1000, 3)
            await asyncio.shield(gw.accountant.finish(reservation, record))
            raise UpstreamFailed(f"the upstream of {target.model!r} broke off its answer") from exc
        usage = Usage()
        out = data
        try:
            payload = json.loads(data)
            if target.kind is WireFormat.ANTHROPIC:
                usage = anthropic_wire.usage_from_message(payload)
            else:
                usage = openai_wire.usage_from_completion(payload) or Usage()
            if target.kind is not request.fmt:
                if request.fmt is WireFormat.ANTHROPIC:
                    converted = translate.openai_to_anthropic_response(payload)
                else:
                    converted = translate.anthropic_to_openai_response(payload)
                converted["model"] = request.model
                out = json.dumps(converted, ensure_ascii=False, separators=(",", ":")).encode()
        except (ValueError, WireFormatError) as exc:
            record.error = f"unreadable upstream reply: {exc}"
        record.usage = usage
        record.cost_usd = gw.cost_after_call(target.model, usage, record.reserved_usd)
        record.outcome = "ok"
        record.status = opened.response.status
        elapsed = deps.clock() - t0
        record.latency_ms = round(elapsed * 1000, 3)
        record.ttft_ms = record.latency_ms
        try:
            # Durable in the journal on return; the database commit rides on the writer's
            # next batch (no task, no wait here).
            queued = gw.accountant.journal_and_queue(reservation, record)
        except Exception:
            log.exception("journaling the call failed; committing it before answering")
            queued = False
        if not queued:
            await asyncio.shield(gw.accountant.finish(reservation, record))
        gw.metrics.request(request.fmt.value, record.status, _label(route), elapsed)
        gw.metrics.usage(target.model, usage, record.cost_usd)
        headers = self._response_headers(route, target, record, b"application/json")
        headers.append((b"content-length", str(len(out)).encode()))
        await send({"type": "http.response.start", "status": record.status, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    async def _send_upstream_error(
        self, send: Send, fmt: WireFormat, exc: UpstreamClientError
    ) -> None:
        status, body = exc.status, exc.body
        if exc.body_format is not fmt:
            try:
                parsed = json.loads(body) if body else {}
            except ValueError:
                parsed = {}
            if fmt is WireFormat.OPENAI:
                status, converted = translate.anthropic_error_to_openai(status, parsed)
            else:
                status, converted = translate.openai_error_to_anthropic(status, parsed)
            body = json.dumps(converted).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def count_tokens(
        self, scope: MutableMapping[str, Any], receive: Receive, send: Send
    ) -> None:
        """Forwarded to an Anthropic upstream; for OpenAI upstreams, the local estimate
        (said so in ``x-orchestra-token-count: estimate``)."""
        gw = self.gateway
        headers = headers_of(scope)
        snapshot = gw.snapshot
        caller = await gw.authenticate(headers)
        raw = await read_body(receive, headers, snapshot.config.gateway.max_body_bytes)
        body = parse_json_object(raw)
        model = check_model_name(body.get("model"))
        check_unicode(raw, body)
        route = snapshot.routing.resolve(model, caller.team)
        gw.check_allowed(caller, route)
        route = await gw.govern(caller, route)
        target = route.primary
        if target.kind is WireFormat.ANTHROPIC:
            request = ModelRequest(WireFormat.ANTHROPIC, raw, body, model, False, 1, None, False)
            from orchestra.gateway.requests import _strip_system

            request.mark_stripped = _strip_system(body, WireFormat.ANTHROPIC) is not None
            out = upstream_body(request, target.upstream_name)
            credential = gw._credential(target)
            if (target.api_key_env or target.api_key_secret) and not credential:
                raise missing_credential(target)
            url = target.base_url + "/v1/messages/count_tokens"
            query = scope.get("query_string", b"").decode("latin-1")
            if query:
                url += "?" + query
            hdrs = upstream_headers(target, credential, headers)
            response = None
            try:
                async with asyncio.timeout(target.connect_timeout_s + 30):
                    response = await gw.client().post(
                        url,
                        out,
                        hdrs,
                        connect_timeout=target.connect_timeout_s,
                        read_timeout=None,
                    )
                    status, data = response.status, await response.read()
            except (UpstreamConnectionError, TimeoutError) as exc:
                raise UpstreamFailed(
                    f"could not count tokens at the upstream of {target.model!r}"
                ) from exc
            finally:
                if response is not None:
                    response.release()
            if status in (401, 403):
                raise ProviderAuthFailed(target, status)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"x-orchestra-token-count", b"upstream"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": data})
            return
        if not isinstance(body.get("messages"), list):
            raise BadRequest("'messages' is required and must be a list")
        tokens = estimate_input_tokens(body, "anthropic")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"x-orchestra-token-count", b"estimate"),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": json.dumps({"input_tokens": tokens}).encode()}
        )


def _label(route: Route) -> str:
    """The ``model`` label of a call's metrics: what the name resolved to (the tier or the
    configured model), never the client's string, so the label set stays bounded."""
    return route.tier or route.primary.model


def _clients_fault(exc: BaseException) -> bool:
    """Whether a call failed before or at the upstream because of what the client sent
    (the upstream's 4xx, or a request that cannot be built for the upstream)."""
    if isinstance(exc, UpstreamClientError):
        return True
    return isinstance(exc, BadRequest | WireFormatError) and getattr(exc, "status", 500) == 400
