"""The agent roster: specialised agents defined as Markdown files with YAML front matter.

Load it with :func:`load_roster`, look agents up on the :class:`Roster`, and export it for
Claude Code with :func:`export_claude_code`. The tier an agent runs at after the
configuration's overrides is :func:`effective_tier`.
"""

from orchestra.roster.checks import ROSTER_CHECK, roster_findings
from orchestra.roster.definition import (
    REQUIRED_SECTIONS,
    AgentDefinition,
    RosterInvalid,
    RosterProblem,
    check_agent,
    parse_agent,
    read_agent_file,
)
from orchestra.roster.export import ExportResult, export_claude_code, render_claude_code
from orchestra.roster.importing import ImportResult, import_agents
from orchestra.roster.marker import agent_mark, strip_agent_mark
from orchestra.roster.roster import (
    BUILTIN_AGENTS_DIR,
    EXTENSION_KEYWORDS,
    Roster,
    effective_tier,
    load_roster,
    read_directory,
    roster_directories,
)
from orchestra.roster.tools import ALWAYS_ENGINE_TOOLS, CLAUDE_CODE_TOOLS, engine_tools
from orchestra.roster.validate import (
    EXPECTED_BUILTIN_TIERS,
    SIMILARITY_THRESHOLD,
    SimilarPair,
    ValidationReport,
    validate_directory,
)

__all__ = [
    "ALWAYS_ENGINE_TOOLS",
    "BUILTIN_AGENTS_DIR",
    "CLAUDE_CODE_TOOLS",
    "EXPECTED_BUILTIN_TIERS",
    "EXTENSION_KEYWORDS",
    "REQUIRED_SECTIONS",
    "ROSTER_CHECK",
    "SIMILARITY_THRESHOLD",
    "AgentDefinition",
    "ExportResult",
    "ImportResult",
    "Roster",
    "RosterInvalid",
    "RosterProblem",
    "SimilarPair",
    "ValidationReport",
    "agent_mark",
    "check_agent",
    "effective_tier",
    "engine_tools",
    "export_claude_code",
    "import_agents",
    "load_roster",
    "parse_agent",
    "read_agent_file",
    "read_directory",
    "render_claude_code",
    "roster_directories",
    "roster_findings",
    "strip_agent_mark",
    "validate_directory",
]
