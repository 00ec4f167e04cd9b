"""Reading the few fields of a client request the gateway must understand.

Everything else in the body passes through untouched: the body is re-serialised only when
the gateway has to change it (the model name, the agent mark, OpenAI's usage option), and
then deterministically, so the same request always yields the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orchestra.gateway.errors import BadRequest
from orchestra.gateway.formats import WireFormat
from orchestra.roster.marker import strip_agent_mark

DEFAULT_MAX_TOKENS = 4096
"""Reservation basis for OpenAI requests that set no ``max_tokens``."""


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
    """Parse a ``/v1/messages`` or ``/v1/chat/completions`` body."""
    body = parse_json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest(
            "'model' is required and must be a non-empty string",
            hint="name a model, a tier (opus, sonnet, haiku) or an alias (GET /v1/models)",
        )
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadRequest("'messages' is required and must be a list", hint="send the conversation")
    stream = body.get("stream") is True
    if fmt is WireFormat.ANTHROPIC:
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise BadRequest(
                "'max_tokens' is required and must be a positive integer",
                hint="set max_tokens, e.g. 1024",
            )
    else:
        value = body.get("max_completion_tokens", body.get("max_tokens"))
        if value is None:
            max_tokens = DEFAULT_MAX_TOKENS
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadRequest(
                "'max_tokens' must be a positive integer", hint="set max_tokens, e.g. 1024"
            )
        else:
            max_tokens = value
    agent = _strip_system(body, fmt)
    return ModelRequest(fmt, raw, body, model, stream, max_tokens, agent, agent is not None)


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
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()
