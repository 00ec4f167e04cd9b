"""A fake model host of known capacity: N slots, T tokens per second per slot, a bounded queue.

With ``FakeUpstream.start(capacity=HostCapacity(slots=4, tokens_per_s=200, queue=8))`` every
generation request takes a slot for ``output_tokens / tokens_per_s`` seconds (its tokens
streamed one by one at that pace); requests beyond the slots wait in FIFO order, and requests
beyond ``slots + queue`` in the house are refused with 503 at once, as Ollama and llama.cpp's
server do. ``GET /metrics`` reports the slots in use and the queue depth under llama.cpp's
metric names, so a capacity planner can be tested against a host whose answer is known
(:meth:`HostCapacity.max_concurrency`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

from orchestra.providers.usage import Usage
from orchestra.testing.steps import Fault, Reply

__all__ = ["HostCapacity", "SlotHost"]

_WORD = "tok "  # one token of a reply


@dataclass(frozen=True, slots=True)
class HostCapacity:
    """The shape of a fake model host (see the module's docstring)."""

    slots: int = 1
    """Requests decoded at once (llama.cpp ``--parallel``, ``OLLAMA_NUM_PARALLEL``)."""
    tokens_per_s: float = 100.0
    """Decode speed of one slot, whatever the number of busy slots."""
    queue: int = 0
    """Requests that may wait for a slot; one more gets 503."""
    max_output_tokens: int = 64
    """Output tokens of a reply when the request asks for more (or names no ``max_tokens``)."""

    def service_s(self, output_tokens: int) -> float:
        """Seconds a slot is held by a reply of ``output_tokens`` tokens: the decode time."""
        return min(output_tokens, self.max_output_tokens) / self.tokens_per_s

    def max_concurrency(self, slo_s: float, output_tokens: int) -> int:
        """The highest number of closed-loop clients (each sending its next request when
        the last one ends) whose requests all end within ``slo_s`` seconds.

        With ``c`` clients and FIFO slots, every request of a round of ``ceil(c / slots)``
        waits that many service times less one, so the latency of a share ``r / slots`` of
        the requests (``r = c mod slots``) is one service time longer than the rest's: for
        fewer than 10 slots any ``r > 0`` puts that longer latency above the 90th
        percentile. Above ``slots + queue`` clients, requests are refused.
        """
        rounds = int(slo_s // self.service_s(output_tokens))
        return min(self.slots * rounds, self.slots + self.queue)


class SlotHost:
    """Admission to the fake's slots: held by the fake for the length of each generation."""

    def __init__(self, capacity: HostCapacity) -> None:
        """A host with every slot free (bound to the event loop of its first request)."""
        self.capacity = capacity
        self.busy = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self.refused = 0
        self.peak = 0
        """The most requests in the house at once (decoding and waiting)."""

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        return len(self._waiting)

    async def acquire(self) -> bool:
        """Take a slot, waiting in FIFO order; ``False`` (take nothing) when the queue is full."""
        if self.busy < self.capacity.slots and not self._waiting:
            self.busy += 1
            self.peak = max(self.peak, self.busy + len(self._waiting))
            return True
        if len(self._waiting) >= self.capacity.queue:
            self.refused += 1
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        self.peak = max(self.peak, self.busy + len(self._waiting))
        try:
            await turn  # the slot is handed over by release(): busy stays counted
        except asyncio.CancelledError:
            if turn in self._waiting:
                self._waiting.remove(turn)
            elif turn.done() and not turn.cancelled():
                self.release()  # handed a slot while being cancelled: pass it on
            raise
        return True

    def release(self) -> None:
        """Free a slot, handing it to the longest-waiting request if there is one."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.busy -= 1

    def step(self, body: dict[str, Any], openai: bool) -> Reply:
        """The paced reply to a generation request ``body``: its whole stream (framing
        events included) lasts the service time, as does the wait before a whole answer."""
        asked = body.get("max_tokens", body.get("max_completion_tokens"))
        limit = self.capacity.max_output_tokens
        tokens = min(asked, limit) if isinstance(asked, int) and asked > 0 else limit
        decode_s = tokens / self.capacity.tokens_per_s
        if openai:  # role, tokens, finish, (usage), [DONE]
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            events = tokens + 3 + int(usage)
        else:  # message_start, block start, tokens, block stop, message_delta, message_stop
            events = tokens + 5
        streamed = body.get("stream") is True
        return Reply(
            text=_WORD * tokens,
            usage=Usage(input_tokens=1, output_tokens=tokens),
            chunk_chars=len(_WORD),
            chunk_delay_s=decode_s / (events - 1),
            delay_s=0.0 if streamed else decode_s,
        )

    @staticmethod
    def refusal() -> Fault:
        """What a request beyond the queue gets (as Ollama answers when its queue is full)."""
        return Fault(503, message="server busy: the request queue is full")

    def metrics(self) -> str:
        """Prometheus text under llama.cpp server's names (``--metrics``)."""
        return (
            "# HELP llamacpp:requests_processing Number of requests processing.\n"
            "# TYPE llamacpp:requests_processing gauge\n"
            f"llamacpp:requests_processing {self.busy}\n"
            "# HELP llamacpp:requests_deferred Number of requests deferred.\n"
            "# TYPE llamacpp:requests_deferred gauge\n"
            f"llamacpp:requests_deferred {self.waiting}\n"
        )
