"""How the agent loop reaches a model: Anthropic Messages through the gateway.

:class:`HttpModelClient` posts to a gateway (or any Anthropic-compatible server) over
HTTP; :class:`InProcessModelClient` sends the same requests into the gateway's ASGI app
in this process (same core, no HTTP hop). Both attach the run/step/agent attribution
headers the gateway records in its ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import httpx

from orchestra.engine.retries import RetryHint, retry_hint
from orchestra.errors import EngineError
from orchestra.providers import Usage

ANTHROPIC_VERSION = "2023-06-01"
T = TypeVar("T")


class ModelCallFailed(EngineError):
    """The gateway or model could not answer; the message carries its status and error."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        hint: str | None = None,
        retry: RetryHint | None = None,
    ):
        super().__init__(message, hint=hint or "check `orchestra gateway` logs and the upstream")
        self.status = status
        self.retry = retry or RetryHint(False)
        """Whether the call may be tried again, and after how long the server asked."""


class BudgetExhausted(ModelCallFailed):
    """The gateway refused the call because a budget (the run's or another) is spent."""


@dataclass(frozen=True)
class Attribution:
    """Who a model call is for; sent as ``x-orchestra-*`` headers.

    With :attr:`call_key` the call also carries ``Idempotency-Key``: the gateway makes it
    once and answers a repeat (a step replayed after its worker died) from what it kept.
    """

    run_id: str
    step: str
    agent: str
    call_key: str | None = None
    """``<run>/<step workflow>/<turn>/<request digest>``: the same for the same call on
    every replay."""

    def for_turn(
        self, scope: str | None, turn: int, request: dict[str, Any] | None = None
    ) -> Attribution:
        """This attribution for model call ``turn`` of the step workflow ``scope`` (no
        key without a workflow: a plain call outside the durable engine).

        With ``request`` the key ends with a digest of the request: a step continued
        after its worker died sends the same call again under the same key (answered
        from what the gateway kept), but a call whose messages differ on the replay (a
        tool's output that changed, such as a test run's timings) is a new call with a
        new key, never refused as a key reused with another body."""
        if scope is None:
            return self
        key = f"{self.run_id}/{scope}/{turn}"
        if request is not None:
            canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
            key += "/" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
        return replace(self, call_key=key)

    def headers(self) -> dict[str, str]:
        headers = {
            "x-orchestra-run": self.run_id,
            "x-orchestra-step": self.step,
            "x-orchestra-agent": self.agent,
        }
        if self.call_key is not None:
            headers["idempotency-key"] = self.call_key
        return headers


@dataclass(frozen=True)
class ModelResponse:
    """The parts of an Anthropic Messages response the loop uses."""

    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: Usage
    model: str
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ModelResponse:
        usage = body.get("usage") or {}
        return cls(
            content=list(body.get("content") or []),
            stop_reason=body.get("stop_reason"),
            usage=Usage(
                input_tokens=int(usage.get("input_tokens") or 0),
                output_tokens=int(usage.get("output_tokens") or 0),
                cache_read_tokens=int(usage.get("cache_read_input_tokens") or 0),
                cache_write_tokens=int(usage.get("cache_creation_input_tokens") or 0),
            ),
            model=str(body.get("model") or ""),
            raw=body,
        )


class ModelClient(Protocol):
    """Anything that can answer an Anthropic Messages request."""

    def create(self, request: dict[str, Any], attribution: Attribution) -> ModelResponse:
        """Send ``request`` (a Messages body) and return the parsed response."""
        ...


def _raise_for(response: httpx.Response) -> None:
    body: Any = None
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        message = str(error.get("message") or body)
        kind = str(error.get("type") or "")
    except ValueError:
        message, kind = response.text[:500], ""
    text = f"model call failed with HTTP {response.status_code}: {message}"
    if response.status_code in {402, 429} and "budget" in f"{kind} {message}".lower():
        raise BudgetExhausted(
            text,
            status=response.status_code,
            hint="continue the run with a higher budget: orchestra resume RUN --budget USD",
        )
    hint = retry_hint(response.status_code, response.headers, body)
    raise ModelCallFailed(text, status=response.status_code, retry=hint)


class RunKeyring:
    """The gateway key of each run a client calls for (thread-safe)."""

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def use(self, run_id: str, secret: str) -> None:
        """Send ``run_id``'s calls with ``secret``."""
        with self._lock:
            self._keys[run_id] = secret

    def drop(self, run_id: str) -> None:
        """Forget ``run_id``'s key."""
        with self._lock:
            self._keys.pop(run_id, None)

    def key_for(self, run_id: str, default: str) -> str:
        """``run_id``'s key, else ``default`` (the client's own)."""
        return self._keys.get(run_id, default)


class HttpModelClient:
    """Anthropic Messages over HTTP to ``base_url`` (the gateway), with the engine's key.

    A connection that fails is tried ``retries`` more times at once (a blip); an error
    answer is raised as :class:`ModelCallFailed` with its :class:`RetryHint`, and the agent
    loop decides whether to wait and try again (:class:`~orchestra.engine.ModelRetry`).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 600.0,
        transport: httpx.BaseTransport | None = None,
        retries: int = 2,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            transport=transport,
        )
        self._api_key = api_key
        self._retries = retries
        self._keys = RunKeyring()

    def use_key(self, run_id: str, secret: str) -> None:
        """Send ``run_id``'s calls with its own key ``secret``."""
        self._keys.use(run_id, secret)

    def drop_key(self, run_id: str) -> None:
        """Forget ``run_id``'s key (the run ended)."""
        self._keys.drop(run_id)

    def create(self, request: dict[str, Any], attribution: Attribution) -> ModelResponse:
        headers = {
            "x-api-key": self._keys.key_for(attribution.run_id, self._api_key),
            "anthropic-version": ANTHROPIC_VERSION,
            **attribution.headers(),
        }
        for attempt in range(self._retries + 1):
            try:
                response = self._client.post("/v1/messages", json=request, headers=headers)
            except httpx.TransportError as exc:
                if attempt < self._retries:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise ModelCallFailed(
                    f"cannot reach the gateway at {self._client.base_url}: {exc}",
                    hint="start it with `orchestra serve` or set engine.gateway_url",
                ) from exc
            if response.status_code >= 400:
                _raise_for(response)
            return ModelResponse.from_body(response.json())
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._client.close()


class InProcessModelClient:
    """Anthropic Messages into an ASGI app (the gateway core) without an HTTP hop.

    The ASGI app is async; the engine's workflows are threads. By default one private
    event loop in a background thread serves every call, so the app's async state stays on
    one loop, and the app's lifespan (startup, shutdown) runs on that loop too. With
    ``loop``, calls go to that already running loop instead (the server's own, whose
    lifespan the server runs): what ``orchestra serve`` uses for the runs it resumes.
    """

    def __init__(
        self, app: Any, api_key: str, *, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self._app = app
        self._api_key = api_key
        self._keys = RunKeyring()
        self._own_loop = loop is None
        self._lifespan_inbox: asyncio.Queue[dict[str, Any]] | None = None
        self._lifespan_task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        if loop is not None:
            self._loop = loop
            self._client = self._new_client()
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="orchestra-inprocess-gateway", daemon=True
        )
        self._thread.start()
        self._client = self._call(self._start())

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self._app), base_url="http://gateway", timeout=600.0
        )

    async def _start(self) -> httpx.AsyncClient:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        started = asyncio.Event()

        async def receive() -> dict[str, Any]:
            return await inbox.get()

        async def send(message: dict[str, Any]) -> None:
            if message["type"].startswith("lifespan.startup"):
                started.set()

        await inbox.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._lifespan_task = asyncio.create_task(self._app(scope, receive, send))
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({waiter, self._lifespan_task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        self._lifespan_inbox = inbox
        return self._new_client()

    async def _stop(self) -> None:
        await self._client.aclose()
        if self._lifespan_inbox is not None and self._lifespan_task is not None:
            await self._lifespan_inbox.put({"type": "lifespan.shutdown"})
            await asyncio.wait({self._lifespan_task}, timeout=10)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def use_key(self, run_id: str, secret: str) -> None:
        """Send ``run_id``'s calls with its own key ``secret``."""
        self._keys.use(run_id, secret)

    def drop_key(self, run_id: str) -> None:
        """Forget ``run_id``'s key (the run ended)."""
        self._keys.drop(run_id)

    def create(self, request: dict[str, Any], attribution: Attribution) -> ModelResponse:
        headers = {
            "x-api-key": self._keys.key_for(attribution.run_id, self._api_key),
            "anthropic-version": ANTHROPIC_VERSION,
            **attribution.headers(),
        }
        response = self._call(self._client.post("/v1/messages", json=request, headers=headers))
        if response.status_code >= 400:
            _raise_for(response)
        return ModelResponse.from_body(response.json())

    def close(self) -> None:
        """Close the client (and, on a private loop, the app's lifespan and the loop).

        Call it from a thread other than the loop's when the loop was given.
        """
        self._call(self._stop())
        if self._own_loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._loop.close()
