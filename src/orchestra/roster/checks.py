"""The roster's part of ``orchestra config check``: folders and tier overrides exist."""

from __future__ import annotations

from pathlib import Path

from orchestra.config.check import CrossCheck, Finding
from orchestra.config.names import close_matches
from orchestra.config.schema import OrchestraConfig
from orchestra.roster.roster import BUILTIN_AGENTS_DIR, read_directory


def _agent_folders(config: OrchestraConfig, base: Path) -> tuple[list[Path], list[Finding]]:
    """The folders agents are read from, and a finding for each configured one missing."""
    folders = [BUILTIN_AGENTS_DIR]
    findings: list[Finding] = []
    for i, folder in enumerate(config.roster.directories):
        resolved = folder if folder.is_absolute() else base / folder
        if not resolved.is_dir():
            findings.append(
                Finding(
                    ("roster", "directories", str(i)),
                    f"agent folder {resolved} does not exist",
                    "create it, correct the path (relative to orchestra.yaml), or remove it",
                )
            )
        else:
            folders.append(resolved)
    import_dir = config.roster.import_dir
    import_dir = import_dir if import_dir.is_absolute() else base / import_dir
    if import_dir.is_dir():
        folders.append(import_dir)
    return folders, findings


def roster_findings(config: OrchestraConfig, base_dir: Path) -> list[Finding]:
    """Missing agent folders (errors), tier overrides naming no agent or category
    (warnings), routing rules naming no agent or category (errors: the gateway refuses
    them). Relative folders resolve against ``base_dir``."""
    folders, findings = _agent_folders(config, base_dir)
    overrides = config.roster.tier_overrides
    routing = config.routing
    if not (overrides.agents or overrides.categories or routing.agents or routing.categories):
        return findings  # nothing refers to agents; spare reading every agent file
    names: set[str] = set()
    categories: set[str] = set()
    for folder in folders:
        agents, _ = read_directory(folder)
        names.update(a.name for a in agents)
        categories.update(a.category for a in agents)
    findings.extend(
        Finding(
            ("roster", "tier_overrides", "agents", agent),
            f"tier override for unknown agent {agent!r}",
            "use a name from `orchestra agents list`",
            warning=True,
        )
        for agent in overrides.agents
        if agent not in names
    )
    findings.extend(
        Finding(
            ("roster", "tier_overrides", "categories", category),
            f"tier override for unknown category {category!r}",
            "known categories: " + ", ".join(sorted(categories)),
            warning=True,
        )
        for category in overrides.categories
        if category not in categories
    )
    findings.extend(_routing_findings(config, names, categories))
    return findings


def _routing_findings(
    config: OrchestraConfig, names: set[str], categories: set[str]
) -> list[Finding]:
    found: list[Finding] = []
    routing = config.routing
    for kind, rules, known in (
        ("agent", routing.agents, names),
        ("category", routing.categories, categories),
    ):
        for name in rules:
            if name in known:
                continue
            close = close_matches(name, sorted(known))
            found.append(
                Finding(
                    ("routing", "agents" if kind == "agent" else "categories", name),
                    f"routing rule for unknown {kind} {name!r}",
                    f"did you mean {', '.join(close)}?"
                    if close
                    else f"use a {kind} from `orchestra agents list`",
                )
            )
    return found


ROSTER_CHECK = CrossCheck("roster", roster_findings)
"""Hand this to :func:`orchestra.config.check.check_config_text` to check the roster."""
