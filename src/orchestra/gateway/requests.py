"""Reading the few fields of a client request the gateway must understand.

Everything else in the body passes through untouched: the body is re-serialised only when
the gateway has to change it (the model name, the agent mark, OpenAI's usage option), and
then deterministically, so the same request always yields the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestra.gateway.errors import BadRequest
from orchestra.gateway.formats import WireFormat
from orchestra.roster.marker import strip_agent_mark

DEFAULT_MAX_TOKENS = 4096
"""Reservation basis for OpenAI requests that set no ``max_tokens``."""
MAX_TOKENS_CEILING = 1_000_000
"""The largest ``max_tokens`` accepted (no model writes more): bounds every reservation and
rate-limit count, whatever the client sends."""
MAX_NAME_CHARS = 200
"""Longest model name or ``x-orchestra-*`` header value (the ledger's column width)."""

# C0/C1 controls (NUL included), and surrogates: after JSON decoding a valid pair is one
# astral character, so any surrogate left is a lone one no UTF-8 encoder accepts.
_UNSAFE_NAME_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
_HEADER_VALUE_RE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


@dataclass
class ModelRequest:
    """A parsed model call: the JSON body plus what the gateway read from it."""

    fmt: WireFormat
    raw: bytes
    body: dict[str, Any]
    model: str
    stream: bool
    max_tokens: int
    agent: str | None
    """Agent named by the roster mark in the system prompt (already stripped from ``body``)."""
    mark_stripped: bool


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 naming what is wrong."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(
            "the request body is not valid JSON",
            hint="send a JSON object with Content-Type: application/json",
        ) from exc
    if not isinstance(body, dict):
        raise BadRequest(
            f"the request body must be a JSON object, got {type(body).__name__}",
            hint="send a JSON object with at least 'model' and 'messages'",
        )
    return body


def _lone_surrogate_in(value: Any) -> bool:
    """Whether any string (key or value) inside ``value`` holds a lone surrogate."""
    stack = [value]
    search = _SURROGATE_RE.search
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if search(item):
                return True
        elif isinstance(item, dict):
            for key, child in item.items():
                if search(key):
                    return True
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_unicode(raw: bytes, body: Any) -> None:
    """400 when the decoded body holds a lone surrogate (``"\\ud800"``): nothing could
    re-serialise it as UTF-8, neither for the upstream nor for the ledger.

    Such a string can only come from a ``\\uD8xx``-``\\uDFxx`` escape (raw UTF-8 bytes
    of a surrogate fail JSON decoding already), so bodies without one skip the walk.
    """
    if b"\\u" in raw and (b"\\ud" in raw or b"\\uD" in raw) and _lone_surrogate_in(body):
        raise BadRequest(
            "the request holds a string that is not valid Unicode (a lone surrogate such as "
            "\\ud800)",
            hint="send text as valid UTF-8; escape pairs must be complete (\\ud83d\\ude00)",
        )


def check_model_name(model: Any) -> str:
    """The requested model name, or a 400: a non-empty string of at most
    :data:`MAX_NAME_CHARS` characters with no control character and no lone surrogate."""
    if not isinstance(model, str) or not model:
        raise BadRequest(
            "'model' is required and must be a non-empty string",
            hint="name a model, a tier (opus, sonnet, haiku) or an alias (GET /v1/models)",
        )
    if len(model) > MAX_NAME_CHARS or _UNSAFE_NAME_RE.search(model):
        raise BadRequest(
            f"'model' must be at most {MAX_NAME_CHARS} characters with no control characters"
            " and no invalid Unicode",
            hint="name a model, a tier (opus, sonnet, haiku) or an alias (GET /v1/models)",
        )
    return model


def attribution(headers: Mapping[str, str], name: str) -> str | None:
    """The value of attribution header ``name``, or a 400 when it is not 1 to
    :data:`MAX_NAME_CHARS` printable ASCII characters (absent or empty: ``None``)."""
    value = headers.get(name)
    if not value:
        return None
    if len(value) > MAX_NAME_CHARS or _HEADER_VALUE_RE.fullmatch(value) is None:
        raise BadRequest(
            f"header {name} must be 1 to {MAX_NAME_CHARS} printable ASCII characters",
            hint="send a short identifier (the engine's run id, step or agent name)",
        )
    return value


def _max_tokens(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{what} must be a positive integer", hint="set max_tokens, e.g. 1024")
    if value > MAX_TOKENS_CEILING:
        raise BadRequest(
            f"{what} must be at most {MAX_TOKENS_CEILING:,}",
            hint="set max_tokens to what the model may write, e.g. 8192",
        )
    return value


def _strip_mark_at(container: dict[str, Any], key: str) -> str | None:
    """Strip the agent mark from ``container[key]`` — a string, or a list of text blocks
    (the first block carrying a mark) — in place; return the agent or ``None``."""
    value = container.get(key)
    if isinstance(value, str):
        agent, rest = strip_agent_mark(value)
        if agent is not None:
            container[key] = rest
        return agent
    if isinstance(value, list):
        for block in value:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                agent, rest = strip_agent_mark(block["text"])
                if agent is not None:
                    block["text"] = rest
                    return agent
    return None


def _strip_system(body: dict[str, Any], fmt: WireFormat) -> str | None:
    """Find the agent mark in the system prompt, strip it in place, return the agent."""
    if fmt is WireFormat.ANTHROPIC:
        return _strip_mark_at(body, "system")
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for message in messages:
        if isinstance(message, dict) and message.get("role") in ("system", "developer"):
            agent = _strip_mark_at(message, "content")
            if agent is not None:
                return agent
    return None


def parse_model_request(raw: bytes, fmt: WireFormat) -> ModelRequest:
    """Parse a ``/v1/messages`` or ``/v1/chat/completions`` body; every value the gateway
    uses is checked here (a 400 otherwise), so nothing unbounded reaches routing, limits,
    the ledger or the upstream."""
    body = parse_json_object(raw)
    model = check_model_name(body.get("model"))
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("'messages' is required and must be a list", hint="send the conversation")
    check_unicode(raw, body)
    stream = body.get("stream") is True
    if fmt is WireFormat.ANTHROPIC:
        max_tokens = _max_tokens(body.get("max_tokens"), "'max_tokens' (required)")
    else:
        value = body.get("max_completion_tokens", body.get("max_tokens"))
        max_tokens = DEFAULT_MAX_TOKENS if value is None else _max_tokens(value, "'max_tokens'")
    agent = _strip_system(body, fmt)
    return ModelRequest(fmt, raw, body, model, stream, max_tokens, agent, agent is not None)


def encode_body(body: dict[str, Any]) -> bytes:
    """``body`` as compact UTF-8 JSON; a 400 when a string in it is not valid Unicode (a
    lone surrogate that got past :func:`check_unicode`, e.g. from a translated tool call's
    arguments)."""
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError as exc:
        raise BadRequest(
            "the request holds a string that is not valid Unicode (a lone surrogate)",
            hint="send text as valid UTF-8; escape pairs must be complete",
        ) from exc


def upstream_body(request: ModelRequest, upstream_name: str) -> bytes:
    """The body to send to an upstream of the client's own format.

    The original bytes when nothing changes; otherwise a deterministic serialisation with
    the served model's upstream name, the mark removed and (OpenAI streams) usage asked for.
    """
    changed = request.mark_stripped or upstream_name != request.model
    body = request.body
    if request.fmt is WireFormat.OPENAI and request.stream:
        options = body.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage") is True):
            changed = True
    if not changed:
        return request.raw
    out = dict(body)
    out["model"] = upstream_name
    if request.fmt is WireFormat.OPENAI and request.stream:
        options = out.get("stream_options")
        out["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    return encode_body(out)
