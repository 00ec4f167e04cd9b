"""Agent tools: the workspace (a git worktree per run), sandboxed commands, the toolbox."""

from orchestra.tools.arguments import argument_problems
from orchestra.tools.sandbox import (
    PASSED_THROUGH,
    CommandLimits,
    CommandResult,
    network_isolation_available,
    run_command,
    scrubbed_environment,
)
from orchestra.tools.toolbox import TOOL_SPECS, Toolbox, ToolResult, ToolSpec, WritePolicy
from orchestra.tools.workspace import Workspace, WorkspaceError, git

__all__ = [
    "PASSED_THROUGH",
    "TOOL_SPECS",
    "CommandLimits",
    "CommandResult",
    "ToolResult",
    "ToolSpec",
    "Toolbox",
    "Workspace",
    "WorkspaceError",
    "WritePolicy",
    "argument_problems",
    "git",
    "network_isolation_available",
    "run_command",
    "scrubbed_environment",
]
