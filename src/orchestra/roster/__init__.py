"""The agent roster: specialised agents defined as Markdown files with YAML front matter."""

from orchestra.roster.marker import agent_mark, strip_agent_mark

__all__ = ["agent_mark", "strip_agent_mark"]
