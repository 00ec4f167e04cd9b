"""Model calls answered once per ``Idempotency-Key`` (docs/gateway.md, "Idempotent calls").

A client (the engine: ``<run>/<step workflow>/<turn>``) sends the same key each time it
asks for the same call. The first request claims the key in the shared database and makes
the call; a repeat, on any replica, is given the stored answer without calling the model
or charging the ledger again (the audit log says it was a replay), waits while the call is
in flight, or takes the key over once the lease of a replica that died has run out. The
call runs in a task of its own: it finishes and its answer is stored even when the client
has gone. Only successful (2xx) answers are kept; an error answer gives the key back, so a
retry calls again. Streamed calls cannot carry a key (400).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import MutableMapping
from typing import Any

from orchestra.gateway.accounts import Caller
from orchestra.gateway.asgi import Message, Receive, Send, headers_of, read_body
from orchestra.gateway.calls import ModelCallHandler
from orchestra.gateway.errors import BadRequest, GatewayHTTPError
from orchestra.gateway.formats import WireFormat
from orchestra.gateway.idempotency_store import (
    Claim,
    IdempotencyStore,
    StoredAnswer,
    owner_name,
)
from orchestra.gateway.service import Gateway

log = logging.getLogger("orchestra.gateway")

KEY_HEADER = "idempotency-key"
REPLAYED_HEADER = b"idempotent-replayed"
MAX_KEY_CHARS = 255
_DROPPED = {"content-length", "connection", "transfer-encoding"}


class KeyReused(GatewayHTTPError):
    """The key was used before with another request body."""

    status = 422
    error_type = "invalid_request_error"


class KeyInFlight(GatewayHTTPError):
    """The same call is still in flight elsewhere after ``gateway.idempotency.wait_s``."""

    status = 409
    error_type = "invalid_request_error"


def check_key(value: str) -> str:
    """``value`` as a key: 1-255 printable ASCII characters, else 400."""
    if not 0 < len(value) <= MAX_KEY_CHARS or not value.isascii() or not value.isprintable():
        raise BadRequest(
            "the Idempotency-Key header must be 1 to 255 printable ASCII characters",
            hint="send a stable key per call, e.g. <run>/<step>/<turn>",
        )
    return value


def _streams(raw: bytes) -> bool:
    try:
        body = json.loads(raw)
    except ValueError:
        return False  # the call itself refuses it, with the usual message
    return isinstance(body, dict) and body.get("stream") is True


class _Capture:
    """An ASGI ``send`` that keeps the answer instead of sending it."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = [
                (n.decode("latin-1"), v.decode("latin-1"))
                for n, v in message.get("headers", [])
                if n.decode("latin-1").lower() not in _DROPPED
            ]
        elif message["type"] == "http.response.body":
            self.chunks.append(bytes(message.get("body", b"")))

    def answer(self) -> StoredAnswer:
        request_id = next((v for n, v in self.headers if n == "x-orchestra-request-id"), None)
        return StoredAnswer(self.status, self.headers, b"".join(self.chunks), request_id)


def _body_once(raw: bytes) -> Receive:
    """A ``receive`` giving ``raw`` as the whole body, then never a disconnect (the call
    goes on whatever the client does)."""
    sent = False
    forever = asyncio.Event()

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await forever.wait()
        return {"type": "http.disconnect"}  # pragma: no cover - never set

    return receive


async def send_answer(send: Send, answer: StoredAnswer, *, replayed: bool) -> None:
    """Send ``answer`` whole (a replay says so in ``idempotent-replayed: true``)."""
    headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in answer.headers]
    headers.append((b"content-length", str(len(answer.body)).encode()))
    if replayed:
        headers.append((REPLAYED_HEADER, b"true"))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


class IdempotentCalls:
    """Serves model calls that carry an ``Idempotency-Key``."""

    def __init__(self, gateway: Gateway, calls: ModelCallHandler, store: IdempotencyStore):
        self.gateway = gateway
        self.calls = calls
        self.store = store
        self._tasks: set[asyncio.Task[StoredAnswer]] = set()

    async def handle(
        self,
        scope: MutableMapping[str, Any],
        receive: Receive,
        send: Send,
        fmt: WireFormat,
        key: str,
    ) -> None:
        """Serve one keyed call: replayed, waited for, or made (and kept)."""
        gw = self.gateway
        key = check_key(key)
        headers = headers_of(scope)
        caller = await gw.authenticate(headers)
        raw = await read_body(receive, headers, gw.snapshot.config.gateway.max_body_bytes)
        if _streams(raw):
            raise BadRequest(
                "a streamed call cannot carry an Idempotency-Key",
                hint="send stream: false with the key, or stream without it",
            )
        digest = hashlib.sha256(raw).hexdigest()
        owner = owner_name()
        claim = await self._claim(caller.developer, key, digest, owner)
        if claim.answer is not None:
            await self._replay(send, caller, key, claim.answer)
            return
        if claim.took_over:
            log.warning("idempotency key %r: its replica's lease ran out; calling again", key)
        task = asyncio.ensure_future(self._call(scope, raw, fmt, caller.developer, key, owner))
        self._tasks.add(task)  # kept until done: the call outlives a client that left
        task.add_done_callback(self._tasks.discard)
        answer = await asyncio.shield(task)
        await send_answer(send, answer, replayed=False)

    async def _claim(self, account: str, key: str, digest: str, owner: str) -> Claim:
        """Claim the key, waiting (polling the database) while the call is in flight."""
        gw = self.gateway
        settings = gw.snapshot.config.gateway.idempotency
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.wait_s
        delay = 0.05
        while True:
            claim = await gw.blocking(
                lambda: self.store.claim(
                    account, key, digest, owner, lease_s=settings.lease_s, ttl_s=settings.ttl_s
                )
            )
            if claim.kind == "mismatch":
                raise KeyReused(
                    "this Idempotency-Key was used with another request body",
                    hint="use a new key for a different request",
                )
            if claim.kind != "busy":
                return claim
            if loop.time() >= deadline:
                raise KeyInFlight(
                    "the call with this Idempotency-Key is still in progress",
                    hint="send the same request again later: it will be given the answer",
                    retry_after_s=5,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _replay(self, send: Send, caller: Caller, key: str, answer: StoredAnswer) -> None:
        gw = self.gateway
        details = {"request_id": answer.request_id, "status": answer.status}
        try:
            await gw.blocking(
                gw.accountant.audit, caller, "gateway.idempotent_replay", key[:200], details
            )
        except Exception:
            log.exception("auditing a replayed idempotency key failed")
        await send_answer(send, answer, replayed=True)

    async def _call(
        self,
        scope: MutableMapping[str, Any],
        raw: bytes,
        fmt: WireFormat,
        account: str,
        key: str,
        owner: str,
    ) -> StoredAnswer:
        """Make the call holding the key (its lease renewed), keep a 2xx answer."""
        gw = self.gateway
        lease_s = gw.snapshot.config.gateway.idempotency.lease_s
        capture = _Capture()
        renewing = asyncio.create_task(self._renew(account, key, owner, lease_s))
        try:
            await self.calls.handle(scope, _body_once(raw), capture.send, fmt)
        except BaseException:
            await self._give_back(account, key, owner)
            raise
        finally:
            renewing.cancel()
        answer = capture.answer()
        if not 200 <= answer.status < 300:
            await self._give_back(account, key, owner)
            return answer
        kept = await gw.blocking(self.store.complete, account, key, owner, answer)
        if not kept:
            log.warning("idempotency key %r was taken over during its call", key)
        return answer

    async def _renew(self, account: str, key: str, owner: str, lease_s: float) -> None:
        while True:
            await asyncio.sleep(lease_s / 3)
            try:
                await self.gateway.blocking(self.store.renew, account, key, owner, lease_s)
            except Exception:
                log.exception("renewing the lease of idempotency key %r failed", key)

    async def _give_back(self, account: str, key: str, owner: str) -> None:
        try:
            await asyncio.shield(self.gateway.blocking(self.store.release, account, key, owner))
        except Exception:
            log.exception("releasing idempotency key %r failed", key)
