"""Wire formats of upstream providers (Anthropic Messages, OpenAI Chat Completions).

Modules: ``sse`` (event-stream parser/encoder), ``anthropic`` and ``openai`` (usage
extraction, stream trackers, error bodies), ``tokens`` (input token estimate), ``translate``
(Anthropic <-> OpenAI), ``models`` (the models-list body), ``errors``.
"""

from orchestra.providers.errors import TranslationError, WireFormatError, upstream_fault
from orchestra.providers.host_metrics import read_gauges
from orchestra.providers.models import models_list_body
from orchestra.providers.sse import SSEEvent, SSEParser, encode_event
from orchestra.providers.tokens import estimate_input_tokens, estimate_text_tokens
from orchestra.providers.translate import (
    anthropic_usage_json,
    to_anthropic_stop_reason,
    to_openai_finish_reason,
)
from orchestra.providers.usage import Usage, token_count

__all__ = [
    "SSEEvent",
    "SSEParser",
    "TranslationError",
    "Usage",
    "WireFormatError",
    "anthropic_usage_json",
    "encode_event",
    "estimate_input_tokens",
    "estimate_text_tokens",
    "models_list_body",
    "read_gauges",
    "to_anthropic_stop_reason",
    "to_openai_finish_reason",
    "token_count",
    "upstream_fault",
]
