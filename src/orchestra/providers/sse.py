"""Server-sent events: an incremental parser and an encoder.

Both wire formats stream over SSE (Anthropic with named events, OpenAI with bare ``data:``
lines ending in ``data: [DONE]``). The parser follows the WHATWG event-stream rules: lines
end in ``\\r\\n``, ``\\n`` or ``\\r``; a blank line dispatches the event; ``data`` lines are
joined with ``\\n``; lines starting with ``:`` are comments; unknown fields are ignored. It
accepts bytes in chunks split anywhere (even inside a UTF-8 character or a ``\\r\\n``) and
returns each event exactly once, with its name and data untouched, so a gateway can observe a
stream and still pass every event through as it came.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orchestra.providers.errors import WireFormatError

__all__ = ["DEFAULT_MAX_LINE_BYTES", "SSEEvent", "SSEParser", "encode_event"]

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
"""A line longer than this without a terminator is treated as a broken stream."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched server-sent event."""

    event: str | None
    """The ``event:`` field, or ``None`` when the stream did not name it (OpenAI)."""
    data: str
    """The ``data:`` lines joined by ``\\n``, exactly as sent."""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """``data`` decoded as JSON; raises :class:`WireFormatError` if it is not JSON."""
        try:
            return json.loads(self.data)
        except ValueError as exc:
            raise WireFormatError(
                f"server-sent event {self.event or 'message'!r} carries data that is not JSON",
                hint="the stream is corrupt or not in the expected wire format",
                status=502,
                error_type="api_error",
            ) from exc


_ENCODER = json.JSONEncoder(separators=(",", ":"))


class SSEParser:
    """Incremental event-stream parser: ``feed(chunk)`` returns the events completed by it."""

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._max_line = max_line_bytes
        # A chunk may end between the \r and \n of one terminator; remember to skip the \n.
        self._skip_lf = False
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None
        self._first_line = True

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk`` and return the events it completed, in order."""
        if not chunk:
            return []
        events: list[SSEEvent] = []
        if not self._skip_lf and b"\r" not in chunk and b"\r" not in self._buffer:
            # The common case (both APIs end lines with \n): split in C, one pass.
            data = bytes(self._buffer) + chunk if self._buffer else chunk
            last = data.rfind(b"\n")
            if last < 0:
                self._buffer = bytearray(data)
            else:
                self._buffer = bytearray(data[last + 1 :])
                for line in data[:last].split(b"\n"):
                    self._line(line, events)
            self._check_length()
            return events
        buf = self._buffer
        start = len(buf)
        buf += chunk
        pos = 0
        if self._skip_lf and buf[:1] == b"\n":
            pos = 1
        self._skip_lf = False
        scan = max(pos, start)
        n = len(buf)
        while True:
            cr = buf.find(b"\r", scan)
            lf = buf.find(b"\n", scan)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                end, nxt = lf, lf + 1
            elif cr + 1 < n:
                end, nxt = cr, cr + 2 if buf[cr + 1] == 0x0A else cr + 1
            else:
                end, nxt = cr, cr + 1
                self._skip_lf = True
            self._line(bytes(buf[pos:end]), events)
            pos = scan = nxt
        del buf[:pos]
        self._check_length()
        return events

    def _check_length(self) -> None:
        if len(self._buffer) > self._max_line:
            raise WireFormatError(
                f"server-sent event line longer than {self._max_line} bytes",
                hint="the upstream stream is corrupt or not an event stream",
                status=502,
                error_type="api_error",
            )

    def finish(self) -> list[SSEEvent]:
        """Signal the end of the stream; returns the last event if it lacked its blank line.

        The standard discards such an event; being lenient costs nothing when observing a
        stream and keeps usage from a final event that a sloppy server did not terminate.
        """
        events: list[SSEEvent] = []
        if self._buffer:
            self._line(bytes(self._buffer), events)
            self._buffer.clear()
        self._line(b"", events)
        self._skip_lf = False
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        if self._first_line:
            self._first_line = False
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        if not raw:
            if self._data:
                events.append(SSEEvent(self._event, "\n".join(self._data), self._id, self._retry))
            self._event = None
            self._data = []
            self._retry = None
            self._id = self._last_id
            return
        if raw.startswith(b"data:"):
            value = raw[6:] if raw[5:6] == b" " else raw[5:]
            self._data.append(value.decode("utf-8", errors="replace"))
            return
        if raw[:1] == b":":
            return
        line = raw.decode("utf-8", errors="replace")
        name, sep, text = line.partition(":")
        if sep and text.startswith(" "):
            text = text[1:]
        if name == "data":
            self._data.append(text)
        elif name == "event":
            self._event = text
        elif name == "id":
            if "\x00" not in text:
                self._id = self._last_id = text
        elif name == "retry" and text.isdigit():
            self._retry = int(text)


def encode_event(event: str | None, data: str | Any, *, id: str | None = None) -> bytes:
    """Encode one event; ``data`` that is not a string is serialised as compact JSON."""
    text = data if isinstance(data, str) else _ENCODER.encode(data)
    head = "" if event is None else f"event: {event}\n"
    if id is not None:
        head += f"id: {id}\n"
    if "\n" not in text and "\r" not in text:  # the common case: one data line
        return f"{head}data: {text}\n\n".encode()
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return (head + "".join(f"data: {line}\n" for line in lines) + "\n").encode()
