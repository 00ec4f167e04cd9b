"""Which tests are new or changed, per test function (never per file).

A test is new or changed when its id was not collected at the base commit, or when its
own source changed: :func:`test_ranges` maps each test function to its line range (Python
with :mod:`ast`, decorators included; Go and JS/TS with the scanners of
:mod:`orchestra.repository.test_sources`), :func:`touched_lines` reads the diff, and a
test is changed when the diff adds a line inside it or deletes lines from inside it.
Unchanged tests in a changed file stay "existing": they must keep passing.

Ids take the runner's form: ``tests/test_a.py::TestK::test_m`` (pytest),
``example.com/m/calc::TestAdd`` (Go: the package's import path; its subtests
``TestAdd/case`` belong to it), ``test/a.test.js::Outer > adds`` (vitest), with
``Outer::adds`` / ``test::adds`` as the alias ``node --test`` reports.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from orchestra.repository.reports import strip_parameters
from orchestra.repository.test_sources import go_test_spans, js_test_spans
from orchestra.tools import git

TEST_FILE_PATTERNS = ("test_*.py", "*_test.py")
TEST_DIRS = ("tests", "test", "testing")
JS_TEST_PATTERNS = ("*.test.js", "*.test.ts", "*.spec.js", "*.spec.ts", "*.test.mjs")

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,(?P<count>\d+))? @@")


def is_test_file(path: str) -> bool:
    """A file holding tests: ``test_*.py``, ``*_test.py``, ``*_test.go``, ``*.test.js`` ..."""
    name = PurePosixPath(path).name
    patterns = (*TEST_FILE_PATTERNS, "*_test.go", *JS_TEST_PATTERNS)
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def is_test_support(path: str) -> bool:
    """A file of the test tree that is not implementation: tests, ``conftest.py``,
    ``tests/__init__.py``, shared helpers and fixtures under a test folder."""
    pure = PurePosixPath(path)
    if is_test_file(path) or pure.name == "conftest.py":
        return True
    return any(part in TEST_DIRS or part == "__tests__" for part in pure.parts[:-1])


@dataclass(frozen=True)
class TouchedLines:
    """What a diff did to one file, in the new file's line numbers."""

    added: frozenset[int] = frozenset()
    """Lines added or changed."""
    deleted_after: frozenset[int] = frozenset()
    """Points where lines were deleted: after line ``n`` (0 = before the first line)."""


def touched_lines(diff: str) -> dict[str, TouchedLines]:
    """Per file, the lines a unified diff (``git diff -U0``) adds and where it deletes."""
    added: dict[str, set[int]] = {}
    deleted: dict[str, set[int]] = {}
    current: str | None = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            target = line[4:].strip()
            current = None if target == "/dev/null" else target.removeprefix("b/")
            continue
        if current is None:
            continue
        match = _HUNK.match(line)
        if match is None:
            continue
        start = int(match.group("start"))
        count = int(match.group("count")) if match.group("count") is not None else 1
        if count == 0:
            deleted.setdefault(current, set()).add(start)
        else:
            added.setdefault(current, set()).update(range(start, start + count))
            # A hunk that replaces lines may also delete some: the range covers it.
    return {
        path: TouchedLines(frozenset(added.get(path, ())), frozenset(deleted.get(path, ())))
        for path in {*added, *deleted}
    }


@dataclass(frozen=True)
class FunctionRange:
    """A test function's qualified name and lines (first decorator to last line)."""

    name: str
    """``test_f`` or ``TestClass::test_m`` (nested classes joined by ``::``)."""
    start: int
    end: int

    def touched_by(self, touched: TouchedLines) -> bool:
        """Whether ``touched`` adds a line inside this function or deletes lines within it."""
        if any(self.start <= n <= self.end for n in touched.added):
            return True
        return any(self.start <= n and n + 1 <= self.end for n in touched.deleted_after)


def function_ranges(source: str) -> list[FunctionRange]:
    """The test functions of a Python module (``test*`` at module level or in classes)."""
    tree = ast.parse(source)
    out: list[FunctionRange] = []

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                walk(node.body, f"{prefix}{node.name}::")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                first = min([d.lineno for d in node.decorator_list] + [node.lineno])
                out.append(FunctionRange(prefix + node.name, first, node.end_lineno or first))

    walk(tree.body, "")
    return out


def test_ranges(path: str, source: str) -> list[FunctionRange]:
    """The tests of a Python, Go or JS/TS test file (raises ``SyntaxError`` for Python)."""
    if path.endswith(".py"):
        return function_ranges(source)
    spans = go_test_spans(source) if path.endswith(".go") else js_test_spans(source)
    return [FunctionRange(s.name, s.start, s.end) for s in spans]


def node_alias(function_id: str) -> str:
    """The id ``node --test`` gives a JS test: its describe chain (or ``test``) and name."""
    title = function_id.split("::", 1)[1]
    *chain, name = title.split(" > ")
    return f"{' > '.join(chain) or 'test'}::{name}"


@dataclass(frozen=True)
class ChangedTests:
    """The new and changed tests of a change, as function ids (no parameters)."""

    functions: frozenset[str] = frozenset()
    """``path::test_f`` / ``path::TestC::test_m`` whose source is new or changed."""
    base_ids: frozenset[str] | None = None
    """Every test id collected at the base commit; ``None`` when not collected."""
    files: frozenset[str] = frozenset()
    """Test files that changed."""
    unparsable: dict[str, str] = field(default_factory=dict)
    """Test files that do not parse, with the syntax error."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Other ids a runner gives a new or changed test (``node --test``'s), to its id."""

    def function_of(self, test_id: str) -> str | None:
        """The new or changed test ``test_id`` is (a case, parameter or Go subtest of)."""
        for candidate in (test_id, strip_parameters(test_id)):
            if candidate in self.functions:
                return candidate
            if candidate in self.aliases:
                return self.aliases[candidate]
        head, _, name = test_id.partition("::")
        if "/" in name and name.startswith(("Test", "Fuzz")):  # a Go subtest
            parent = f"{head}::{name.split('/', 1)[0]}"
            if parent in self.functions:
                return parent
        return None

    def is_new_or_changed(self, test_id: str) -> bool:
        """Whether ``test_id`` must fail in red (new or changed) rather than keep passing."""
        if self.function_of(test_id) is not None:
            return True
        if self.base_ids is None:
            return False
        if test_id in self.base_ids:
            return False
        # Not collected at the base: new, unless it is a file-level (collection) id.
        return "::" in test_id

    def in_file(self, path: str) -> list[str]:
        """The new or changed functions of ``path``."""
        return sorted(f for f in self.functions if f.split("::", 1)[0] == path)


def changed_tests(
    sources: dict[str, str],
    touched: dict[str, TouchedLines],
    base_sources: dict[str, str | None],
    base_ids: frozenset[str] | None = None,
    prefixes: dict[str, str] | None = None,
) -> ChangedTests:
    """The new or changed tests of Python, Go and JS/TS test files.

    ``sources`` maps each changed test file to its current text, ``base_sources`` to its
    text at the base (``None`` for a new file), ``touched`` the diff per file.
    ``prefixes`` gives the id prefix of a file when it is not its path (a Go package's
    import path).
    """
    functions: set[str] = set()
    aliases: dict[str, str] = {}
    unparsable: dict[str, str] = {}
    for path, text in sources.items():
        try:
            current = test_ranges(path, text)
        except SyntaxError as exc:
            unparsable[path] = f"line {exc.lineno}: {exc.msg}"
            continue
        base_text = base_sources.get(path)
        try:
            before = {f.name for f in test_ranges(path, base_text)} if base_text else set()
        except SyntaxError:
            before = set()
        lines = touched.get(path, TouchedLines())
        prefix = (prefixes or {}).get(path, path)
        for fn in current:
            if fn.name not in before or fn.touched_by(lines):
                functions.add(f"{prefix}::{fn.name}")
                if not path.endswith((".py", ".go")):
                    aliases[node_alias(f"{prefix}::{fn.name}")] = f"{prefix}::{fn.name}"
    return ChangedTests(
        functions=frozenset(functions),
        base_ids=base_ids,
        files=frozenset(sources),
        unparsable=unparsable,
        aliases=aliases,
    )


def parse_collected_ids(output: str) -> frozenset[str]:
    """Test ids from ``pytest --collect-only -q`` (one ``path::name`` per line)."""
    ids = set()
    for line in output.splitlines():
        line = line.strip()
        if "::" in line and " " not in line.split("::", 1)[0]:
            ids.add(line)
    return frozenset(ids)


def changed_tests_in(
    worktree: Path, base_commit: str, base_ids: frozenset[str] | None = None
) -> ChangedTests:
    """:func:`changed_tests` for the test files changed in ``worktree`` since
    ``base_commit`` (committed, uncommitted and untracked)."""
    names = git(worktree, "diff", "--name-only", base_commit).splitlines()
    names += git(worktree, "ls-files", "--others", "--exclude-standard").splitlines()
    files = sorted({n for n in names if is_test_file(n) and (worktree / n).is_file()})
    if not files:
        return ChangedTests(base_ids=base_ids)
    sources = {f: (worktree / f).read_text(encoding="utf-8", errors="replace") for f in files}
    base_sources: dict[str, str | None] = {}
    for f in files:
        if _exists_at(worktree, base_commit, f):
            base_sources[f] = git(worktree, "show", f"{base_commit}:{f}")
        else:
            base_sources[f] = None
    diff = git(worktree, "diff", "-U0", "--no-color", base_commit, "--", *files)
    prefixes = {f: go_package(worktree, f) for f in files if f.endswith(".go")}
    return changed_tests(sources, touched_lines(diff), base_sources, base_ids, prefixes)


def go_package(worktree: Path, path: str) -> str:
    """The import path ``go test`` reports for the package holding ``path``: the nearest
    ``go.mod``'s module and the folder under it (the folder itself without a ``go.mod``)."""
    folder = PurePosixPath(path).parent
    for root in (folder, *folder.parents):
        gomod = worktree / root / "go.mod"
        if not gomod.is_file():
            continue
        for line in gomod.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("module "):
                module = line.split()[1].strip('"')
                rel = folder.relative_to(root).as_posix()
                return module if rel == "." else f"{module}/{rel}"
    return folder.as_posix()


def _exists_at(worktree: Path, commit: str, path: str) -> bool:
    listed = git(worktree, "ls-tree", "--name-only", commit, "--", path, check=False)
    return bool(listed.strip())
