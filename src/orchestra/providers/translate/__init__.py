"""Translation between Anthropic Messages and OpenAI Chat Completions, both ways.

Requests, responses, streams (incremental, stateful translators) and errors. Malformed or
untranslatable input raises :class:`orchestra.providers.errors.TranslationError` carrying the
HTTP status to answer with (400 for the client's request, 502 for the upstream's reply).
Coverage and limits: ``docs/wire-formats.md``.
"""

from orchestra.providers.translate._common import (
    ANTHROPIC_TO_OPENAI_FINISH,
    OPENAI_TO_ANTHROPIC_STOP,
    to_anthropic_stop_reason,
    to_openai_finish_reason,
)
from orchestra.providers.translate.requests import (
    DEFAULT_MAX_TOKENS,
    anthropic_to_openai_request,
    openai_to_anthropic_request,
)
from orchestra.providers.translate.responses import (
    anthropic_error_to_openai,
    anthropic_to_openai_response,
    anthropic_usage_json,
    openai_error_to_anthropic,
    openai_to_anthropic_response,
    openai_usage_json,
)
from orchestra.providers.translate.streams import AnthropicToOpenAIStream, OpenAIToAnthropicStream

__all__ = [
    "ANTHROPIC_TO_OPENAI_FINISH",
    "DEFAULT_MAX_TOKENS",
    "OPENAI_TO_ANTHROPIC_STOP",
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "anthropic_error_to_openai",
    "anthropic_to_openai_request",
    "anthropic_to_openai_response",
    "anthropic_usage_json",
    "openai_error_to_anthropic",
    "openai_to_anthropic_request",
    "openai_to_anthropic_response",
    "openai_usage_json",
    "to_anthropic_stop_reason",
    "to_openai_finish_reason",
]
