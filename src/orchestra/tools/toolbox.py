"""The tools an agent can call, with JSON schemas and errors the model can act on.

Tool names are the engine tool names of ``orchestra.roster`` (``read_file``, ``edit_file``
...). Every path is confined to the run's worktree; writes are further limited by the
step's :class:`WritePolicy` (an implementer owns its part's files, nobody edits the
tests the red phase committed).
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestra.tools.arguments import argument_problems
from orchestra.tools.sandbox import CommandLimits, CommandResult, run_command
from orchestra.tools.workspace import Workspace, WorkspaceError, git

MAX_READ_CHARS = 60_000
MAX_LIST_ENTRIES = 500
MAX_SEARCH_HITS = 100

KnowledgeSearch = Callable[[str, int], list[str]]
"""(query, k) -> short texts; supplied when the knowledge store is available."""
KnowledgeStore = Callable[[str, str], str]
"""(text, kind) -> entry id."""


@dataclass(frozen=True)
class ToolResult:
    """What a tool returns to the model (``is_error`` makes it a tool error)."""

    content: str
    is_error: bool = False


@dataclass(frozen=True)
class WritePolicy:
    """Which files an agent may create or change in this step."""

    allowed: tuple[str, ...] | None = None
    """Glob patterns (``fnmatch`` on the relative path); ``None`` allows any path."""
    protected: frozenset[str] = frozenset()
    """Exact paths nobody may change in this step (the committed red tests)."""
    reason: str = ""
    """Said in the refusal, so the model knows what to do instead."""

    def check(self, rel: str) -> None:
        """Raise :class:`WorkspaceError` if this step may not write ``rel``."""
        if rel in self.protected:
            raise WorkspaceError(
                f"{rel} is a test committed in the red phase and cannot be changed",
                hint="change the implementation so the test passes; the test is the contract",
            )
        if self.allowed is not None and not any(fnmatch.fnmatch(rel, p) for p in self.allowed):
            raise WorkspaceError(
                f"this step may not write {rel}",
                hint=f"write only files matching {', '.join(self.allowed)}. {self.reason}".strip(),
            )


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the model sees it."""

    name: str
    description: str
    input_schema: dict[str, Any]

    def as_anthropic(self) -> dict[str, Any]:
        """The tool in the Anthropic Messages ``tools`` format."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }


def _schema(props: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(required),
        "additionalProperties": False,
    }


_STR = {"type": "string"}
_PATH = {"type": "string", "description": "path relative to the repository root"}

FINDING_SCHEMA = {
    "type": "object",
    "properties": {
        "severity": {"type": "string", "enum": ["critical", "high", "medium", "low", "info"]},
        "file": _STR,
        "line": {"type": "integer"},
        "finding": _STR,
        "fix": _STR,
        "blocking": {"type": "boolean"},
    },
    "required": ["severity", "finding", "blocking"],
}

PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "approach": _STR,
        "parts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": _STR,
                    "files": {"type": "array", "items": _STR},
                    "description": _STR,
                },
                "required": ["name", "files", "description"],
            },
        },
        "tests": {"type": "array", "items": _STR},
        "test_files": {"type": "array", "items": _STR},
        "acceptance_criteria": {"type": "array", "items": _STR},
    },
    "required": ["approach", "parts", "tests", "acceptance_criteria"],
}

TOOL_SPECS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "list_files",
            "List files under a folder of the repository (recursive, .git excluded).",
            _schema({"path": _PATH, "pattern": {"type": "string", "description": "glob"}}),
        ),
        ToolSpec(
            "read_file",
            "Read a text file; optionally only lines start_line..end_line (1-based).",
            _schema(
                {"path": _PATH, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}},
                ["path"],
            ),
        ),
        ToolSpec(
            "search_files",
            "Search file contents with a regular expression; returns path:line: text.",
            _schema({"pattern": _STR, "path": _PATH, "glob": _STR}, ["pattern"]),
        ),
        ToolSpec(
            "write_file",
            "Create or overwrite a file with the given content.",
            _schema({"path": _PATH, "content": _STR}, ["path", "content"]),
        ),
        ToolSpec(
            "edit_file",
            "Replace old_text with new_text in a file; old_text must occur exactly once.",
            _schema({"path": _PATH, "old_text": _STR, "new_text": _STR}, ["path", "old_text"]),
        ),
        ToolSpec(
            "apply_patch",
            "Apply a unified diff (paths a/... b/... relative to the repository root).",
            _schema({"patch": _STR}, ["patch"]),
        ),
        ToolSpec(
            "run_tests",
            "Run the repository's test command, optionally on some test paths only.",
            _schema({"paths": {"type": "array", "items": _STR}}),
        ),
        ToolSpec(
            "run_command",
            "Run an allowed command (argv list, no shell) in the repository.",
            _schema({"argv": {"type": "array", "items": _STR, "minItems": 1}}, ["argv"]),
        ),
        ToolSpec("git_status", "Show changed and untracked files.", _schema({})),
        ToolSpec(
            "git_diff",
            "Show the diff of the working tree against the run's starting commit.",
            _schema({"path": _PATH}),
        ),
        ToolSpec(
            "knowledge_search",
            "Search the project's knowledge store (decisions, conventions, APIs).",
            _schema({"query": _STR, "k": {"type": "integer"}}, ["query"]),
        ),
        ToolSpec(
            "knowledge_store",
            "Store a durable fact (decision, convention, pattern, bug, api, note).",
            _schema(
                {
                    "text": _STR,
                    "kind": {
                        "type": "string",
                        "enum": ["decision", "convention", "pattern", "bug", "api", "note"],
                    },
                },
                ["text", "kind"],
            ),
        ),
        ToolSpec(
            "finish",
            "Declare this step complete. Give a short summary; architects add `plan`, "
            "reviewers add `verdict` and `findings`.",
            _schema(
                {
                    "summary": _STR,
                    "plan": PLAN_SCHEMA,
                    "verdict": {"type": "string", "enum": ["approve", "request_changes"]},
                    "findings": {"type": "array", "items": FINDING_SCHEMA},
                },
                ["summary"],
            ),
        ),
    )
}


@dataclass
class Toolbox:
    """Executes tool calls for one agent step inside one workspace."""

    workspace: Workspace
    home: Path
    """Scratch folder used as ``HOME`` of commands (inside the run folder)."""
    test_command: list[str]
    allowed_commands: list[str]
    limits: CommandLimits
    policy: WritePolicy = field(default_factory=WritePolicy)
    knowledge_search: KnowledgeSearch | None = None
    knowledge_store: KnowledgeStore | None = None
    test_env: dict[str, str] = field(default_factory=dict)
    """Variables of the repository's test environment (``PATH``, ``VIRTUAL_ENV``,
    ``PYTHONPATH``...) given to commands on top of the sandbox's own."""
    pass_env: tuple[str, ...] = ()
    """Variables copied from Orchestra's environment into commands (see the sandbox)."""

    def specs(self, names: Sequence[str]) -> list[ToolSpec]:
        """The specs of ``names`` that this toolbox can serve, in a stable order."""
        out = []
        for name in TOOL_SPECS:
            if name not in names:
                continue
            if name == "knowledge_search" and self.knowledge_search is None:
                continue
            if name == "knowledge_store" and self.knowledge_store is None:
                continue
            out.append(TOOL_SPECS[name])
        return out

    def execute(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run one tool call; every refusal is a tool error with a hint, never an exception."""
        handler = getattr(self, f"_tool_{name}", None)
        if handler is None or name not in TOOL_SPECS:
            return ToolResult(f"unknown tool {name!r}; use one of the tools offered", True)
        problems = argument_problems(TOOL_SPECS[name].input_schema, arguments)
        if problems:
            schema = json.dumps(TOOL_SPECS[name].input_schema["properties"])
            return ToolResult(
                f"bad arguments for {name}: {'; '.join(problems)}. Expected: {schema}", True
            )
        try:
            result: ToolResult = handler(**arguments)
            return result
        except WorkspaceError as exc:
            return ToolResult(str(exc), True)
        except TypeError as exc:
            schema = json.dumps(TOOL_SPECS[name].input_schema["properties"])
            return ToolResult(f"bad arguments for {name}: {exc}. Expected: {schema}", True)
        except (OSError, UnicodeDecodeError, re.error, ValueError) as exc:
            return ToolResult(f"{name} failed: {exc}", True)

    # -- reading -----------------------------------------------------------------------
    def _base(self, path: str) -> Path:
        if path in {".", ""}:
            return self.workspace.root
        return self.workspace.resolve(path, must_exist=True)

    def _walk(self, base: Path) -> list[str]:
        out: list[str] = []
        for path in sorted(base.rglob("*")):
            rel = self.workspace.relative(path)
            if rel.split("/")[0] in {".git", ".orchestra"} or "__pycache__" in rel:
                continue
            if path.is_file():
                out.append(rel)
        return out

    def _tool_list_files(self, path: str = ".", pattern: str | None = None) -> ToolResult:
        base = (
            self.workspace.root
            if path in {".", ""}
            else self.workspace.resolve(path, must_exist=True)
        )
        files = self._walk(base) if base.is_dir() else [self.workspace.relative(base)]
        if pattern:
            files = [f for f in files if fnmatch.fnmatch(f, pattern)]
        more = len(files) - MAX_LIST_ENTRIES
        text = "\n".join(files[:MAX_LIST_ENTRIES]) or "(no files)"
        if more > 0:
            text += f"\n[... {more} more; narrow with path or pattern]"
        return ToolResult(text)

    def _tool_read_file(
        self, path: str, start_line: int | None = None, end_line: int | None = None
    ) -> ToolResult:
        target = self.workspace.resolve(path, must_exist=True)
        if target.is_dir():
            return ToolResult(f"{path} is a folder; call list_files on it", True)
        text = target.read_text(encoding="utf-8")
        if start_line or end_line:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[(start_line or 1) - 1 : end_line or len(lines)])
        if len(text) > MAX_READ_CHARS:
            text = text[:MAX_READ_CHARS] + "\n[... cut; read with start_line/end_line]"
        return ToolResult(text)

    def _tool_search_files(
        self, pattern: str, path: str = ".", glob: str | None = None
    ) -> ToolResult:
        regex = re.compile(pattern)
        base = (
            self.workspace.root
            if path in {".", ""}
            else self.workspace.resolve(path, must_exist=True)
        )
        hits: list[str] = []
        for rel in self._walk(base):
            if glob and not fnmatch.fnmatch(rel, glob):
                continue
            try:
                lines = (self.workspace.root / rel).read_text(encoding="utf-8").splitlines()
            except (UnicodeDecodeError, OSError):
                continue
            for number, line in enumerate(lines, 1):
                if regex.search(line):
                    hits.append(f"{rel}:{number}: {line[:300]}")
                    if len(hits) >= MAX_SEARCH_HITS:
                        return ToolResult("\n".join(hits) + "\n[... more hits; narrow the search]")
        return ToolResult("\n".join(hits) or "no matches")

    # -- writing -----------------------------------------------------------------------
    def _writable(self, path: str) -> Path:
        target = self.workspace.resolve(path)
        self.policy.check(self.workspace.relative(target))
        return target

    def _tool_write_file(self, path: str, content: str) -> ToolResult:
        target = self._writable(path)
        existed = target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        verb = "overwrote" if existed else "created"
        return ToolResult(f"{verb} {path} ({len(content.splitlines())} lines)")

    def _tool_edit_file(self, path: str, old_text: str, new_text: str = "") -> ToolResult:
        target = self._writable(path)
        if not target.is_file():
            return ToolResult(f"{path} does not exist; create it with write_file", True)
        text = target.read_text(encoding="utf-8")
        count = text.count(old_text) if old_text else 0
        if count == 0:
            return ToolResult(
                f"old_text not found in {path}; read_file it and copy the exact text", True
            )
        if count > 1:
            return ToolResult(
                f"old_text occurs {count} times in {path}; include more context so it is unique",
                True,
            )
        target.write_text(text.replace(old_text, new_text, 1), encoding="utf-8")
        return ToolResult(f"edited {path}")

    def _tool_apply_patch(self, patch: str) -> ToolResult:
        paths = set(re.findall(r"^(?:\+\+\+|---) (?:[ab]/)?(\S+)", patch, flags=re.MULTILINE))
        paths.discard("/dev/null")
        if not paths:
            return ToolResult("no file headers (--- a/path, +++ b/path) in the patch", True)
        for rel in paths:
            self._writable(rel)
        if not patch.endswith("\n"):
            patch += "\n"
        check = subprocess.run(
            ["git", "-C", str(self.workspace.root), "apply", "--check", "--recount", "-"],
            input=patch,
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            return ToolResult(
                f"patch does not apply: {check.stderr.strip()}; read the file and retry, "
                "or use edit_file",
                True,
            )
        subprocess.run(
            ["git", "-C", str(self.workspace.root), "apply", "--recount", "-"],
            input=patch,
            capture_output=True,
            text=True,
            check=True,
        )
        return ToolResult(f"patched {', '.join(sorted(paths))}")

    # -- commands ----------------------------------------------------------------------
    def run_tests(self, paths: Sequence[str] = ()) -> CommandResult:
        """Run the test command (on ``paths`` if given) in the sandbox."""
        for rel in paths:
            self.workspace.resolve(rel)
        return run_command(
            [*self.test_command, *paths],
            cwd=self.workspace.root,
            home=self.home,
            limits=self.limits,
            env_extra=self.test_env,
            pass_env=self.pass_env,
        )

    def _tool_run_tests(self, paths: list[str] | None = None) -> ToolResult:
        result = self.run_tests(paths or [])
        status = "passed" if result.ok else f"failed (exit {result.exit_code})"
        return ToolResult(f"tests {status}\n{result.combined()}")

    def _tool_run_command(self, argv: list[str]) -> ToolResult:
        if not argv or not all(isinstance(a, str) for a in argv):
            return ToolResult("argv must be a non-empty list of strings", True)
        program = Path(argv[0]).name
        if program not in self.allowed_commands or "/" in argv[0]:
            return ToolResult(
                f"{argv[0]!r} is not an allowed command; allowed: "
                f"{', '.join(self.allowed_commands)}",
                True,
            )
        result = run_command(
            argv,
            cwd=self.workspace.root,
            home=self.home,
            limits=self.limits,
            env_extra=self.test_env,
            pass_env=self.pass_env,
        )
        return ToolResult(f"exit {result.exit_code}\n{result.combined()}", not result.ok)

    def _tool_git_status(self) -> ToolResult:
        return ToolResult(git(self.workspace.root, "status", "--short") or "clean")

    def _tool_git_diff(self, path: str | None = None) -> ToolResult:
        args = ["diff", self.workspace.base_commit]
        if path:
            args += ["--", self.workspace.relative(self.workspace.resolve(path))]
        text = git(self.workspace.root, *args)
        return ToolResult(text[:MAX_READ_CHARS] or "no changes")

    # -- knowledge ---------------------------------------------------------------------
    def _tool_knowledge_search(self, query: str, k: int = 5) -> ToolResult:
        if self.knowledge_search is None:
            return ToolResult("the knowledge store is not available in this run", True)
        hits = self.knowledge_search(query, max(1, min(k, 20)))
        return ToolResult("\n---\n".join(hits) or "no entries")

    def _tool_knowledge_store(self, text: str, kind: str) -> ToolResult:
        if self.knowledge_store is None:
            return ToolResult("the knowledge store is not available in this run", True)
        return ToolResult(f"stored as {self.knowledge_store(text, kind)}")

    def _tool_finish(self, summary: str, **_: Any) -> ToolResult:
        return ToolResult(f"step finished: {summary[:200]}")
