"""The roster: every agent definition, loaded from the built-in and configured folders."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePath

from orchestra.config.models import TIERS, TierName
from orchestra.config.schema import OrchestraConfig
from orchestra.errors import RosterError
from orchestra.roster.definition import (
    AgentDefinition,
    RosterInvalid,
    RosterProblem,
    read_agent_file,
)

BUILTIN_AGENTS_DIR = Path(__file__).parent / "agents"
"""The agents shipped with Orchestra (package data)."""

IGNORED_FILES = frozenset({"README.md", "CHANGELOG.md"})
"""Markdown files in an agent folder that are not agents."""

IMPLEMENTER_CATEGORIES: tuple[str, ...] = ("languages", "frontend", "mobile", "backend")
"""Categories whose agents write production code, most general first: a ``.py`` file goes
to the Python specialist before the Django one."""

EXTENSION_KEYWORDS: dict[str, tuple[str, ...]] = {
    ".py": ("python",),
    ".pyi": ("python",),
    ".ipynb": ("python",),
    ".ts": ("typescript",),
    ".mts": ("typescript",),
    ".cts": ("typescript",),
    ".tsx": ("react", "typescript"),
    ".jsx": ("react", "javascript"),
    ".js": ("javascript",),
    ".mjs": ("javascript",),
    ".cjs": ("javascript",),
    ".go": ("go",),
    ".rs": ("rust",),
    ".java": ("java",),
    ".kt": ("kotlin",),
    ".kts": ("kotlin",),
    ".swift": ("swift",),
    ".m": ("objective-c", "ios"),
    ".c": ("c",),
    ".h": ("c", "cpp"),
    ".cc": ("cpp",),
    ".cpp": ("cpp",),
    ".cxx": ("cpp",),
    ".hpp": ("cpp",),
    ".hh": ("cpp",),
    ".cs": ("csharp",),
    ".rb": ("ruby",),
    ".erb": ("rails", "ruby"),
    ".php": ("php",),
    ".sql": ("sql",),
    ".sh": ("shell", "bash"),
    ".bash": ("bash", "shell"),
    ".zsh": ("shell",),
    ".scala": ("scala",),
    ".sc": ("scala",),
    ".ex": ("elixir",),
    ".exs": ("elixir",),
    ".hs": ("haskell",),
    ".vue": ("vue",),
    ".svelte": ("svelte",),
    ".css": ("css",),
    ".scss": ("css", "sass"),
    ".sass": ("css", "sass"),
    ".less": ("css",),
    ".dart": ("dart", "flutter"),
}
"""File extension -> specialty keywords, most specific first."""


def effective_tier(agent: AgentDefinition, config: OrchestraConfig | None = None) -> TierName:
    """The tier ``agent`` runs at after the configuration's overrides.

    ``roster.tier_overrides.agents`` wins over ``roster.tier_overrides.categories``,
    which wins over the tier in the agent's file.
    """
    if config is None:
        return agent.tier
    overrides = config.roster.tier_overrides
    if agent.name in overrides.agents:
        return overrides.agents[agent.name]
    if agent.category in overrides.categories:
        return overrides.categories[agent.category]
    return agent.tier


class Roster:
    """A set of agents with unique names; lookups by name, category, tier and specialty."""

    def __init__(self, agents: Iterable[AgentDefinition]) -> None:
        self._agents: dict[str, AgentDefinition] = {}
        for agent in agents:
            if agent.name in self._agents:
                raise RosterError(
                    f"agent {agent.name!r} is defined twice",
                    hint="give every agent a unique name",
                )
            self._agents[agent.name] = agent

    def __len__(self) -> int:
        return len(self._agents)

    def __iter__(self) -> Iterator[AgentDefinition]:
        return iter(self._agents.values())

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    @property
    def names(self) -> list[str]:
        """Agent names in load order."""
        return list(self._agents)

    def find(self, name: str) -> AgentDefinition | None:
        """The agent called ``name``, or ``None``."""
        return self._agents.get(name)

    def get(self, name: str) -> AgentDefinition:
        """The agent called ``name``; :class:`RosterError` suggesting close names if none."""
        agent = self._agents.get(name)
        if agent is None:
            close = self.close_names(name)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else "run `orchestra agents list` to see every agent"
            )
            raise RosterError(f"no agent named {name!r}", hint=hint)
        return agent

    def close_names(self, name: str, limit: int = 3) -> list[str]:
        """Names similar to ``name`` (for suggestions), best first."""
        close = difflib.get_close_matches(name, self._agents, n=limit, cutoff=0.6)
        if not close:
            close = [n for n in self._agents if name and name in n][:limit]
        return close

    def filter(
        self,
        *,
        category: str | None = None,
        tier: str | None = None,
        specialty: str | None = None,
        config: OrchestraConfig | None = None,
    ) -> list[AgentDefinition]:
        """Agents matching every given criterion; ``tier`` is the effective tier."""
        return [
            a
            for a in self._agents.values()
            if (category is None or a.category == category)
            and (tier is None or effective_tier(a, config) == tier)
            and (specialty is None or specialty in a.specialties)
        ]

    @property
    def categories(self) -> list[str]:
        """Categories present, sorted."""
        return sorted({a.category for a in self._agents.values()})

    def tier_counts(self, config: OrchestraConfig | None = None) -> dict[str, int]:
        """Number of agents per (effective) tier, every tier present."""
        counts = Counter(effective_tier(a, config) for a in self._agents.values())
        return {tier: counts.get(tier, 0) for tier in TIERS}

    def pick_for_file(self, path: str | PurePath) -> AgentDefinition | None:
        """The implementer best suited to ``path``, by its extension, or ``None``."""
        keywords = EXTENSION_KEYWORDS.get(PurePath(path).suffix.lower(), ())
        implementers = [a for a in self._agents.values() if a.category in IMPLEMENTER_CATEGORIES]
        for keyword in keywords:
            matches = [a for a in implementers if keyword in a.specialties]
            if matches:
                return min(
                    matches,
                    key=lambda a: (
                        IMPLEMENTER_CATEGORIES.index(a.category),
                        a.specialties.index(keyword),
                        a.name,
                    ),
                )
        return None

    def assign_files(self, paths: Iterable[str | PurePath]) -> dict[str, list[str]]:
        """Agent name -> the given paths it should implement; unmatched paths are left out."""
        assignment: dict[str, list[str]] = {}
        for path in paths:
            agent = self.pick_for_file(path)
            if agent is not None:
                assignment.setdefault(agent.name, []).append(str(path))
        return assignment

    def pick_for_files(self, paths: Iterable[str | PurePath]) -> list[AgentDefinition]:
        """Language specialists for ``paths``, the one covering most files first.

        The engine uses this to choose implementers for the files a plan touches.
        """
        assignment = self.assign_files(paths)
        ranked = sorted(assignment.items(), key=lambda item: (-len(item[1]), item[0]))
        return [self._agents[name] for name, _ in ranked]


def agent_files(directory: Path) -> list[Path]:
    """The agent files in ``directory``, sorted by name."""
    return sorted(p for p in directory.glob("*.md") if p.name not in IGNORED_FILES)


def roster_directories(config: OrchestraConfig | None, base_dir: Path | None = None) -> list[Path]:
    """The configured extra agent folders (resolved against ``base_dir``) that exist,
    then the import folder if it exists."""
    if config is None:
        return []
    base = base_dir or Path.cwd()
    found: list[Path] = []
    for folder in config.roster.directories:
        found.append(folder if folder.is_absolute() else base / folder)
    import_dir = config.roster.import_dir
    import_dir = import_dir if import_dir.is_absolute() else base / import_dir
    if import_dir.is_dir() and import_dir.resolve() not in {f.resolve() for f in found}:
        found.append(import_dir)
    return found


def read_directory(directory: Path) -> tuple[list[AgentDefinition], list[RosterProblem]]:
    """Every agent in ``directory`` and every problem found, errors and warnings."""
    if not directory.is_dir():
        return [], [
            RosterProblem(
                str(directory),
                None,
                "",
                "agent folder does not exist",
                "create it, or remove it from `roster.directories` in orchestra.yaml",
            )
        ]
    agents: list[AgentDefinition] = []
    problems: list[RosterProblem] = []
    for path in agent_files(directory):
        agent, found = read_agent_file(path)
        problems.extend(found)
        if agent is not None:
            agents.append(agent)
    return agents, problems


def duplicate_problems(agents: Iterable[AgentDefinition]) -> list[RosterProblem]:
    """One error per agent whose name an earlier agent already uses."""
    first: dict[str, AgentDefinition] = {}
    problems: list[RosterProblem] = []
    for agent in agents:
        earlier = first.get(agent.name)
        if earlier is None:
            first[agent.name] = agent
            continue
        problems.append(
            RosterProblem(
                str(agent.source),
                2,
                "name",
                f"agent name {agent.name!r} is already used by {earlier.source}",
                "rename one of the agents (and its file); names must be unique across the "
                "built-in roster and your folders",
            )
        )
    return problems


def load_roster(
    dir: Path | None = None,
    *,
    config: OrchestraConfig | None = None,
    base_dir: Path | None = None,
) -> Roster:
    """Load the built-in roster (or ``dir`` instead of it) plus the configured folders.

    ``config`` supplies ``roster.directories`` and the import folder, resolved against
    ``base_dir`` (the folder of ``orchestra.yaml``; default: the working folder).
    Raises :class:`RosterInvalid` listing every error in every file.
    """
    agents: list[AgentDefinition] = []
    problems: list[RosterProblem] = []
    for directory in [dir or BUILTIN_AGENTS_DIR, *roster_directories(config, base_dir)]:
        found, issues = read_directory(directory)
        agents.extend(found)
        problems.extend(issues)
    problems.extend(duplicate_problems(agents))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise RosterInvalid(errors)
    return Roster(agents)
