"""Wire formats of upstream providers (Anthropic Messages, OpenAI Chat Completions).

Modules: ``sse`` (event-stream parser/encoder), ``anthropic`` and ``openai`` (usage
extraction, stream trackers, error bodies), ``tokens`` (input token estimate), ``translate``
(Anthropic <-> OpenAI), ``models`` (the models-list body), ``errors``.
"""

from orchestra.providers.errors import TranslationError, WireFormatError, upstream_fault
from orchestra.providers.models import models_list_body
from orchestra.providers.sse import SSEEvent, SSEParser, encode_event
from orchestra.providers.usage import Usage, token_count

__all__ = [
    "SSEEvent",
    "SSEParser",
    "TranslationError",
    "Usage",
    "WireFormatError",
    "encode_event",
    "models_list_body",
    "token_count",
    "upstream_fault",
]
