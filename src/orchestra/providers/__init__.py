"""Wire formats of upstream providers (Anthropic Messages, OpenAI Chat Completions)."""

from orchestra.providers.usage import Usage

__all__ = ["Usage"]
