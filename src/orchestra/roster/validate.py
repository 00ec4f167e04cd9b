"""Checks over a whole folder of agents: names, tier split, near-duplicate prompts.

Per-file checks (schema, tools, sections, length) live in :mod:`.definition`; this module
adds what only shows across files. Near-duplicates are measured as the Jaccard
similarity of the prompts' word 3-shingles, after removing the five required headings
(every prompt shares them, so they say nothing about copying).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestra.config.models import TIERS
from orchestra.roster.definition import REQUIRED_SECTIONS, AgentDefinition, RosterProblem
from orchestra.roster.roster import (
    BUILTIN_AGENTS_DIR,
    duplicate_problems,
    read_directory,
)

EXPECTED_BUILTIN_TIERS: dict[str, int] = {"opus": 1, "sonnet": 37, "haiku": 81}
"""The tier split of the built-in roster: one planner, 37 reviewers and leads, 81 doers."""

SHINGLE_SIZE = 3
SIMILARITY_THRESHOLD = 0.10
"""Pairs of prompts at or above this Jaccard similarity (word 3-shingles) are rejected.

Chosen by measuring the built-in roster (prompts written independently per role): the
most similar pair of distinct roles scores 0.03 (see docs/roster.md for the figures). A
prompt that reuses a quarter of another scores 0.12 or more, one that keeps another's text
replacing every fifth word scores about 0.22, and two prompts sharing an 80-word
boilerplate paragraph score about 0.10. So 0.10 sits three times above the closest real
pair and at or below every kind of copying measured.
"""

_HEADINGS = re.compile(
    r"^##\s+(?:" + "|".join(re.escape(s) for s in REQUIRED_SECTIONS) + r")\s*$",
    re.MULTILINE,
)
_WORD = re.compile(r"[a-z0-9_]+(?:['.+#-][a-z0-9_]+)*")


@dataclass(frozen=True)
class SimilarPair:
    """Two agents whose prompts are too alike."""

    first: str
    second: str
    score: float
    """Jaccard similarity of word 3-shingles, 0 (nothing shared) to 1 (identical)."""


@dataclass
class ValidationReport:
    """The outcome of validating one folder of agents."""

    directory: Path
    builtin: bool
    """Whether this is the built-in roster (whose tier split is enforced)."""
    agents: list[AgentDefinition] = field(default_factory=list)
    problems: list[RosterProblem] = field(default_factory=list)
    tier_counts: dict[str, int] = field(default_factory=dict)
    similar: list[SimilarPair] = field(default_factory=list)
    most_similar: SimilarPair | None = None
    """The closest pair found, whether or not above the threshold (for calibration)."""

    @property
    def errors(self) -> list[RosterProblem]:
        """Problems that make the folder invalid."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[RosterProblem]:
        """Problems worth fixing that do not block loading."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """No errors."""
        return not self.errors


def shingles(prompt: str, size: int = SHINGLE_SIZE) -> frozenset[tuple[str, ...]]:
    """The set of ``size``-word shingles of ``prompt``, headings removed, lowercased."""
    words = _WORD.findall(_HEADINGS.sub(" ", prompt).lower())
    if len(words) < size:
        return frozenset({tuple(words)}) if words else frozenset()
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset[tuple[str, ...]], b: frozenset[tuple[str, ...]]) -> float:
    """Jaccard similarity of two sets (0 when both are empty)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def similarity_pairs(
    agents: Sequence[AgentDefinition],
    reference: Sequence[AgentDefinition] = (),
) -> list[SimilarPair]:
    """Similarity of every pair among ``agents`` and of each against ``reference``,
    highest first."""
    own = [(a.name, shingles(a.prompt)) for a in agents]
    ref = [(a.name, shingles(a.prompt)) for a in reference]
    pairs: list[SimilarPair] = []
    for i, (name, sh) in enumerate(own):
        for other, other_sh in own[i + 1 :]:
            pairs.append(SimilarPair(name, other, round(jaccard(sh, other_sh), 4)))
        for other, other_sh in ref:
            if other != name:
                pairs.append(SimilarPair(name, other, round(jaccard(sh, other_sh), 4)))
    pairs.sort(key=lambda p: (-p.score, p.first, p.second))
    return pairs


_ESCALATION_TARGET = re.compile(r"->\s*([a-z0-9][a-z0-9-]*)\s*$")


def escalation_problems(agents: Iterable[AgentDefinition], known: set[str]) -> list[RosterProblem]:
    """Warnings for escalations of the form ``"... -> name"`` naming no known agent."""
    problems = []
    for agent in agents:
        for item in agent.escalates:
            match = _ESCALATION_TARGET.search(item)
            if match and match.group(1) not in known:
                problems.append(
                    RosterProblem(
                        str(agent.source),
                        None,
                        "escalates",
                        f"escalation target {match.group(1)!r} is not an agent in the roster",
                        "name an existing agent after '->' (or a person, in words)",
                        severity="warning",
                    )
                )
    return problems


def validate_directory(
    directory: Path | None = None,
    *,
    reference: Sequence[AgentDefinition] = (),
    threshold: float = SIMILARITY_THRESHOLD,
) -> ValidationReport:
    """Validate every agent file in ``directory`` (default: the built-in roster).

    ``reference`` holds agents already in the roster (the built-in ones, when checking a
    team's folder): names must not clash with them and prompts must not copy them.
    The built-in tier split (1 opus, 37 sonnet, 81 haiku) is enforced only for the
    built-in folder; for other folders the counts are reported.
    """
    folder = directory or BUILTIN_AGENTS_DIR
    builtin = folder.resolve() == BUILTIN_AGENTS_DIR.resolve()
    agents, problems = read_directory(folder)
    report = ValidationReport(directory=folder, builtin=builtin, agents=agents)
    problems.extend(duplicate_problems([*reference, *agents]))
    counts: dict[str, int] = {tier: 0 for tier in TIERS}
    for agent in agents:
        counts[agent.tier] += 1
    report.tier_counts = counts
    if builtin and counts != EXPECTED_BUILTIN_TIERS:
        problems.append(
            RosterProblem(
                str(folder),
                None,
                "tier",
                "built-in tier split is "
                + ", ".join(f"{counts[t]} {t}" for t in TIERS)
                + "; expected "
                + ", ".join(f"{EXPECTED_BUILTIN_TIERS[t]} {t}" for t in TIERS),
                "move agents between tiers (or add/remove agents) to restore the split",
            )
        )
    pairs = similarity_pairs(agents, reference)
    report.most_similar = pairs[0] if pairs else None
    report.similar = [p for p in pairs if p.score >= threshold]
    by_name = {a.name: a for a in [*reference, *agents]}
    for pair in report.similar:
        problems.append(
            RosterProblem(
                str(by_name[pair.first].source),
                None,
                "body",
                f"prompt is near-identical to {pair.second!r} (similarity {pair.score:.2f}, "
                f"limit {threshold:.2f})",
                "rewrite the prompt for this role's own method, checks and output",
            )
        )
    problems.extend(escalation_problems(agents, set(by_name)))
    report.problems = problems
    return report
