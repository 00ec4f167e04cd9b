"""One agent definition: a Markdown file with YAML front matter, parsed and checked.

The front matter is validated with Pydantic (it comes from files people edit); the
result is a frozen :class:`AgentDefinition`. Every problem names the file, the line and
the field, and says how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestra.config.loader import yaml_line_index
from orchestra.config.models import TierName
from orchestra.errors import RosterError
from orchestra.roster.tools import CLAUDE_CODE_TOOLS, engine_tools

AGENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
"""Agent names: lowercase letters, digits and ``-``; at most 64 characters."""

REQUIRED_SECTIONS: tuple[str, ...] = (
    "Role",
    "How you work",
    "What you hand back",
    "When you stop",
    "Never",
)
"""``## `` headings every prompt must have, in this order."""

MIN_WORDS, MAX_WORDS = 200, 600
"""Hard limits on prompt length: shorter cannot cover the five sections with substance;
longer costs context on every call the agent makes."""
TARGET_WORDS = (250, 450)
"""The length the format contract asks for; outside it is a warning."""


@dataclass(frozen=True)
class RosterProblem:
    """One thing wrong with an agent file or with the roster as a whole."""

    file: str
    line: int | None
    field: str
    message: str
    hint: str
    severity: Literal["error", "warning"] = "error"

    @property
    def location(self) -> str:
        """``file:line`` (or just the file when the line is unknown)."""
        return f"{self.file}:{self.line}" if self.line else self.file

    def render(self) -> str:
        """``file:line: field: message`` and the fix on the next line."""
        field = f"{self.field}: " if self.field else ""
        return f"{self.location}: {field}{self.message}\n  fix: {self.hint}"


class RosterInvalid(RosterError):
    """Agent files have errors; ``problems`` lists every one of them."""

    def __init__(self, problems: list[RosterProblem]) -> None:
        errors = [p for p in problems if p.severity == "error"] or problems
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first.location}: {first.field}: {first.message}{more}", hint=first.hint)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(p.render() for p in self.problems)


@dataclass(frozen=True)
class AgentDefinition:
    """A specialised agent: who it is, what it may use, and its system prompt."""

    name: str
    description: str
    """When to use the agent (Claude Code reads this to decide when to delegate)."""
    claude_tools: tuple[str, ...]
    """Claude Code tool names, as in the file."""
    engine_tools: tuple[str, ...]
    """Orchestra engine tools derived from ``claude_tools`` (see :mod:`.tools`)."""
    tier: TierName
    """Default tier; configuration may move it (see :func:`orchestra.roster.effective_tier`)."""
    fallback_tier: TierName | None
    """Tier to escalate to when this one cannot do the job."""
    category: str
    specialties: tuple[str, ...]
    decides: tuple[str, ...]
    escalates: tuple[str, ...]
    prompt: str
    """The body of the file: the agent's system prompt."""
    source: Path | None = None
    """File the definition was read from."""


class AgentFrontMatter(BaseModel):
    """The front matter of an agent file, as written (the trust boundary)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=AGENT_NAME_PATTERN)
    description: str = Field(min_length=20, max_length=1000)
    tools: list[str] = Field(min_length=1)
    model: TierName
    category: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    tier: TierName
    fallback_tier: TierName | None
    specialties: list[str] = Field(min_length=3, max_length=8)
    decides: list[str] = Field(min_length=2, max_length=5)
    escalates: list[str] = Field(min_length=2, max_length=5)

    @field_validator("tools", mode="before")
    @classmethod
    def _split_tools(cls, value: object) -> object:
        # Claude Code writes tools as one comma-separated string; a YAML list is accepted.
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("specialties")
    @classmethod
    def _slug_specialties(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9.+#-]*", item):
                raise ValueError(f"specialty {item!r} must be a short lowercase keyword")
        return value


_HINTS = {
    "extra_forbidden": "remove this key; allowed keys are name, description, tools, model, "
    "category, tier, fallback_tier, specialties, decides, escalates",
    "missing": "add this key to the front matter (see docs/roster.md)",
    "literal_error": "use opus, sonnet or haiku",
    "string_pattern_mismatch": "use lowercase letters, digits and '-' only",
    "too_short": "add items/text to reach the minimum given in the message",
    "too_long": "shorten it to the maximum given in the message",
    "string_too_short": "write one or two sentences saying when to use the agent",
    "string_too_long": "shorten it to one or two sentences",
    "string_type": "write it as a quoted string; an unquoted ': ' inside makes YAML read a mapping",
    "list_type": "write a YAML list: `[a, b]` or one `- item` per line",
}


def _split(text: str, source: str) -> tuple[str, str, int]:
    """Split a file into front matter text, body and the body's first line number."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise RosterInvalid(
            [
                RosterProblem(
                    source,
                    1,
                    "",
                    "the file does not start with a '---' front matter line",
                    "start the file with '---', the YAML keys, then '---' and the prompt",
                )
            ]
        )
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1 :]), i + 2
    raise RosterInvalid(
        [
            RosterProblem(
                source,
                1,
                "",
                "the front matter is not closed",
                "add a line with '---' after the last YAML key",
            )
        ]
    )


def _front_matter(header: str, source: str) -> dict[str, object]:
    try:
        data = yaml.load(header, Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else None
        problem = getattr(exc, "problem", None) or "syntax error"
        raise RosterInvalid(
            [
                RosterProblem(
                    source,
                    line,
                    "",
                    f"front matter is not valid YAML: {problem}",
                    "quote values that contain ': ' or '#', and check the indentation",
                )
            ]
        ) from exc
    if not isinstance(data, dict):
        raise RosterInvalid(
            [RosterProblem(source, 2, "", "front matter must be YAML keys", "write `key: value`")]
        )
    return {str(k): v for k, v in data.items()}


def parse_agent(text: str, source: str, *, stem: str | None = None) -> AgentDefinition:
    """Parse one agent file's text; raise :class:`RosterInvalid` listing its errors.

    ``stem`` is the file name without ``.md``; the agent's name must equal it.
    Warnings (a prompt outside the target length) do not raise; see :func:`check_agent`.
    """
    agent, problems = check_agent(text, source, stem=stem)
    errors = [p for p in problems if p.severity == "error"]
    if errors or agent is None:
        raise RosterInvalid(errors or problems)
    return agent


def check_agent(
    text: str, source: str, *, stem: str | None = None
) -> tuple[AgentDefinition | None, list[RosterProblem]]:
    """Parse one agent file; return the definition (``None`` on errors) and all problems."""
    try:
        header, body, body_line = _split(text, source)
        data = _front_matter(header, source)
    except RosterInvalid as exc:
        return None, exc.problems
    index: dict[tuple[str, ...], int] | None = None

    def line_of(*path: str) -> int | None:
        nonlocal index
        # Composing the YAML node tree is slow; only files with problems need it.
        lines = index = index if index is not None else yaml_line_index(header)
        for depth in range(len(path), 0, -1):
            found = lines.get(tuple(path[:depth]))
            if found:
                return found + 1  # the header starts on the file's second line
        return None

    try:
        front = AgentFrontMatter.model_validate(data)
    except ValidationError as exc:
        problems = _schema_problems(exc, source, line_of)
        problems.extend(_body_problems(body, body_line, source))
        return None, problems
    problems = _consistency_problems(front, source, stem, line_of)
    problems.extend(_body_problems(body, body_line, source))
    if any(p.severity == "error" for p in problems):
        return None, problems
    agent = AgentDefinition(
        name=front.name,
        description=front.description.strip(),
        claude_tools=tuple(front.tools),
        engine_tools=engine_tools(front.tools),
        tier=front.tier,
        fallback_tier=front.fallback_tier,
        category=front.category,
        specialties=tuple(front.specialties),
        decides=tuple(front.decides),
        escalates=tuple(front.escalates),
        prompt=body.strip() + "\n",
        source=Path(source),
    )
    return agent, problems


_LineOf = Callable[..., int | None]
"""The 1-based line of a front-matter key path in the agent file, if known."""


def _schema_problems(exc: ValidationError, source: str, line_of: _LineOf) -> list[RosterProblem]:
    problems: list[RosterProblem] = []
    for item in exc.errors():
        path = tuple(str(p) for p in item["loc"])
        problems.append(
            RosterProblem(
                source,
                line_of(*path) if path else 2,
                ".".join(path),
                item["msg"],
                _HINTS.get(item["type"], "correct the value; see docs/roster.md"),
            )
        )
    return problems


def _consistency_problems(
    front: AgentFrontMatter, source: str, stem: str | None, line_of: _LineOf
) -> list[RosterProblem]:
    """What the schema cannot say: the name matches the file, tools exist and appear once,
    model equals tier, and the fallback tier differs from the tier."""
    problems: list[RosterProblem] = []
    if stem is not None and front.name != stem:
        problems.append(
            RosterProblem(
                source,
                line_of("name"),
                "name",
                f"name {front.name!r} differs from the file name {stem!r}",
                f"rename the file to {front.name}.md or set `name: {stem}`",
            )
        )
    problems.extend(
        RosterProblem(
            source,
            line_of("tools"),
            "tools",
            f"unknown tool {tool!r}",
            f"use Claude Code tool names: {', '.join(CLAUDE_CODE_TOOLS)}",
        )
        for tool in front.tools
        if tool not in CLAUDE_CODE_TOOLS
    )
    if len(set(front.tools)) != len(front.tools):
        problems.append(
            RosterProblem(
                source, line_of("tools"), "tools", "a tool is listed twice", "list each once"
            )
        )
    if front.model != front.tier:
        problems.append(
            RosterProblem(
                source,
                line_of("model"),
                "model",
                f"model {front.model!r} differs from tier {front.tier!r}",
                "set model and tier to the same value (model is what Claude Code reads)",
            )
        )
    if front.fallback_tier is not None and front.fallback_tier == front.tier:
        problems.append(
            RosterProblem(
                source,
                line_of("fallback_tier"),
                "fallback_tier",
                f"fallback_tier equals the agent's own tier {front.tier!r}",
                "name a different tier to escalate to, or null",
            )
        )
    return problems


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when available: several times faster on 119 files."""

_HEADING = re.compile(r"^##\s+(.+?)\s*$", re.MULTILINE)


def _body_problems(body: str, body_line: int, source: str) -> list[RosterProblem]:
    problems: list[RosterProblem] = []
    headings = [m.group(1) for m in _HEADING.finditer(body)]
    missing = [s for s in REQUIRED_SECTIONS if s not in headings]
    for section in missing:
        problems.append(
            RosterProblem(
                source,
                body_line,
                "body",
                f"the prompt has no '## {section}' section",
                f"add a '## {section}' heading with its content (see docs/roster.md)",
            )
        )
    present = [h for h in headings if h in REQUIRED_SECTIONS]
    if not missing and present != list(REQUIRED_SECTIONS):
        problems.append(
            RosterProblem(
                source,
                body_line,
                "body",
                "required sections are out of order: " + ", ".join(present),
                "order them: " + ", ".join(REQUIRED_SECTIONS),
                severity="warning",
            )
        )
    words = word_count(body)
    if words < MIN_WORDS or words > MAX_WORDS:
        problems.append(
            RosterProblem(
                source,
                body_line,
                "body",
                f"the prompt has {words} words; it must have {MIN_WORDS}-{MAX_WORDS}",
                f"aim for {TARGET_WORDS[0]}-{TARGET_WORDS[1]} words of role-specific method",
            )
        )
    elif not TARGET_WORDS[0] <= words <= TARGET_WORDS[1]:
        problems.append(
            RosterProblem(
                source,
                body_line,
                "body",
                f"the prompt has {words} words; the target is {TARGET_WORDS[0]}-{TARGET_WORDS[1]}",
                "tighten or extend the prompt towards the target length",
                severity="warning",
            )
        )
    return problems


def word_count(text: str) -> int:
    """Words in ``text`` as a reader counts them (whitespace-separated tokens)."""
    return len(text.split())


def read_agent_file(path: Path) -> tuple[AgentDefinition | None, list[RosterProblem]]:
    """Read and check one agent file (see :func:`check_agent`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [
            RosterProblem(
                str(path),
                None,
                "",
                f"cannot read the file: {exc}",
                "check that it exists, is readable and is UTF-8 text",
            )
        ]
    return check_agent(text, str(path), stem=path.stem)
