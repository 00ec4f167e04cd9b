"""Token usage of one model call, in the terms both wire formats can express."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestra.providers.errors import upstream_fault

__all__ = ["Usage", "token_count"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call. Anthropic reports cache tokens separately from ``input_tokens``;
    OpenAI counts cached tokens inside ``prompt_tokens`` — adapters convert to this shape,
    where ``input_tokens`` excludes cache reads and writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    """Input tokens served from the prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens written to the prompt cache (Anthropic ``cache_creation_input_tokens``)."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    @property
    def total_tokens(self) -> int:
        """Every token of the call: input, output and cache reads and writes."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


def token_count(usage: Mapping[str, Any], key: str) -> int:
    """A token count from an upstream's ``usage`` object; absent or ``null`` is 0.

    Anything but a non-negative integer is the upstream's fault (a 502), never a number
    guessed into the ledger.
    """
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise upstream_fault(f"usage field {key!r} is not a non-negative integer: {value!r}")
    return value
