"""Agent tools: the Claude Code names agent files use, and Orchestra's engine tools.

Agent files list Claude Code tool names, because the same file is exported as a Claude
Code sub-agent. When Orchestra's own engine runs the agent, each Claude Code tool maps
to the engine tools that give the same capability; tools that only exist inside Claude
Code (web access, its to-do list) map to nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

CLAUDE_CODE_TOOLS: tuple[str, ...] = (
    "Read",
    "Write",
    "Edit",
    "Glob",
    "Grep",
    "Bash",
    "WebFetch",
    "WebSearch",
    "TodoWrite",
)
"""The Claude Code tool names an agent file may list."""

ENGINE_TOOLS_FOR: dict[str, tuple[str, ...]] = {
    "Read": ("read_file", "list_files"),
    "Glob": ("list_files",),
    "Grep": ("search_files",),
    "Write": ("write_file",),
    "Edit": ("edit_file", "apply_patch"),
    "Bash": ("run_tests", "run_command", "git_status", "git_diff"),
    "WebFetch": (),
    "WebSearch": (),
    "TodoWrite": (),
}
"""Claude Code tool -> the engine tools that provide the same capability."""

ALWAYS_ENGINE_TOOLS: tuple[str, ...] = ("knowledge_search", "knowledge_store", "finish")
"""Engine tools every agent gets: the shared memory and the way to end its turn."""


def engine_tools(claude_tools: Iterable[str]) -> tuple[str, ...]:
    """The engine tools for a list of Claude Code tools, in a stable order, no repeats.

    Raises :class:`KeyError` for a name that is not a Claude Code tool.
    """
    seen: dict[str, None] = {}
    for tool in claude_tools:
        for engine_tool in ENGINE_TOOLS_FOR[tool]:
            seen.setdefault(engine_tool, None)
    for engine_tool in ALWAYS_ENGINE_TOOLS:
        seen.setdefault(engine_tool, None)
    return tuple(seen)
