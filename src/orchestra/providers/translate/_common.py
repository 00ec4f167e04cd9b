"""Shared helpers of the translators: typed access to untrusted JSON, and reason mapping."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from orchestra.providers.errors import TranslationError, WireFormatError

P = ParamSpec("P")
R = TypeVar("R")

ANTHROPIC_TO_OPENAI_FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}
OPENAI_TO_ANTHROPIC_STOP: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def to_openai_finish_reason(reason: str) -> str:
    """An OpenAI ``finish_reason`` for an Anthropic ``stop_reason`` (OpenAI values pass)."""
    return ANTHROPIC_TO_OPENAI_FINISH.get(reason, reason)


def to_anthropic_stop_reason(reason: str) -> str:
    """An Anthropic ``stop_reason`` for an OpenAI ``finish_reason`` (Anthropic values pass)."""
    return OPENAI_TO_ANTHROPIC_STOP.get(reason, reason)


def bad_request(message: str, hint: str | None = None) -> TranslationError:
    """A client request that cannot be translated (HTTP 400)."""
    return TranslationError(
        message,
        hint=hint or "send only features both wire formats support (see docs/wire-formats.md)",
    )


def bad_reply(message: str) -> TranslationError:
    """An upstream reply that cannot be translated (HTTP 502)."""
    return TranslationError(
        message,
        hint="the upstream sent a reply outside its wire format; check the provider's kind",
        status=502,
        error_type="api_error",
    )


def guarded(what: str, *, upstream: bool) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn any unexpected exception from malformed input into a :class:`TranslationError`.

    The translators check what they use, but untrusted JSON can be shaped in more ways than
    any check list; a clear 400/502 beats a 500 for the ones nobody thought of.
    """

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except WireFormatError:
                raise
            except (
                KeyError,
                TypeError,
                AttributeError,
                ValueError,
                IndexError,
                RecursionError,  # e.g. a tool input nested thousands deep, when re-encoded
            ) as exc:
                message = f"malformed {what}: {type(exc).__name__}: {exc}"
                raise (bad_reply(message) if upstream else bad_request(message)) from exc

        return inner

    return wrap


def obj(value: Any, what: str, *, upstream: bool = False) -> Mapping[str, Any]:
    """``value`` as a JSON object or a translation error naming ``what``."""
    if not isinstance(value, Mapping):
        message = f"{what} must be a JSON object, got {type(value).__name__}"
        raise bad_reply(message) if upstream else bad_request(message)
    return value


def lst(value: Any, what: str, *, upstream: bool = False) -> list[Any]:
    """``value`` as a JSON array (``None`` is an empty one)."""
    if value is None:
        return []
    if not isinstance(value, list):
        message = f"{what} must be a JSON array, got {type(value).__name__}"
        raise bad_reply(message) if upstream else bad_request(message)
    return value


def text_of(value: Any, what: str, *, upstream: bool = False) -> str:
    """A string field, or a translation error."""
    if not isinstance(value, str):
        message = f"{what} must be a string, got {type(value).__name__}"
        raise bad_reply(message) if upstream else bad_request(message)
    return value


def parse_arguments(raw: Any, what: str, *, upstream: bool) -> dict[str, Any]:
    """OpenAI tool-call ``arguments`` (a JSON string) as the object Anthropic wants."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    if not isinstance(raw, str):
        message = f"{what} must be a JSON string"
        raise bad_reply(message) if upstream else bad_request(message)
    try:
        value = json.loads(raw)
    except ValueError as exc:
        message = f"{what} is not valid JSON: {raw[:80]!r}"
        raise (bad_reply(message) if upstream else bad_request(message)) from exc
    if not isinstance(value, dict):
        message = f"{what} must encode a JSON object, got {type(value).__name__}"
        raise bad_reply(message) if upstream else bad_request(message)
    return value


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    """Compact JSON, as both APIs send it (one shared encoder: cheaper than json.dumps)."""
    return _ENCODER.encode(value)
