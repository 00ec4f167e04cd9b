"""Wire formats of upstream providers (Anthropic Messages, OpenAI Chat Completions).

Modules: ``sse`` (event-stream parser/encoder), ``anthropic`` and ``openai`` (usage
extraction, stream trackers, error bodies), ``tokens`` (input token estimate), ``translate``
(Anthropic <-> OpenAI), ``errors``.
"""

from orchestra.providers.errors import TranslationError, WireFormatError
from orchestra.providers.usage import Usage

__all__ = ["TranslationError", "Usage", "WireFormatError"]
