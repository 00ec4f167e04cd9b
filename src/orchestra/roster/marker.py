"""The attribution mark that ties a Claude Code sub-agent's requests to its roster entry.

``orchestra agents export`` puts one mark line at the top of each exported agent's prompt.
Claude Code sends that prompt as the sub-agent's system prompt; the gateway finds the mark,
records the agent, and removes exactly the mark line before forwarding. Removal is a pure
function of the text, so the forwarded prompt is byte-identical on every request and prompt
caching keeps working.
"""

from __future__ import annotations

import re

MARK_TEMPLATE = "<!-- orchestra-agent: {name} -->\n"
_MARK_RE = re.compile(r"<!-- orchestra-agent: ([a-z0-9][a-z0-9-]{0,63}) -->\n?")


def agent_mark(name: str) -> str:
    """The mark line for agent ``name`` (with its trailing newline)."""
    return MARK_TEMPLATE.format(name=name)


def strip_agent_mark(text: str) -> tuple[str | None, str]:
    """Return ``(agent name or None, text without the first mark)``."""
    match = _MARK_RE.search(text)
    if match is None:
        return None, text
    return match.group(1), text[: match.start()] + text[match.end() :]
