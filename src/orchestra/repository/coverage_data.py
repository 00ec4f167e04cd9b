"""Reading what a coverage tool wrote: executed and missing lines per file.

- coverage.py's JSON report, as it is.
- Go's ``-coverprofile`` (``file:startLine.startCol,endLine.endCol statements count``): a
  line of a block counts when the block's part of it holds code, so the ``{`` a block
  opens on and the ``}`` it closes on are not lines of their own.
- V8's raw coverage (``NODE_V8_COVERAGE``, what ``node`` writes and c8 reads): the count
  of each character is that of the innermost range holding it; a line with code runs
  when its first code character ran. Lines that are only comments, brackets and
  punctuation are not executable. Offsets are read as characters of the file: a script
  that Node transforms (TypeScript loaders, bundlers) does not map and is left out
  unless its text is what ran.
- c8's ``--reporter=json`` (istanbul's ``coverage-final.json``): c8 gives every line a
  statement, so lines without code (as above) are left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from orchestra.repository.test_sources import mask_go, mask_js

_NOT_CODE = " \t\r{}()[];,"


@dataclass(frozen=True)
class CoverageData:
    """Executed and missing lines per file (paths relative to the worktree)."""

    executed: dict[str, frozenset[int]]
    missing: dict[str, frozenset[int]]


def _data(executed: dict[str, set[int]], missing: dict[str, set[int]]) -> CoverageData:
    files = set(executed) | set(missing)
    return CoverageData(
        {f: frozenset(executed.get(f, set())) for f in files},
        {f: frozenset(missing.get(f, set()) - executed.get(f, set())) for f in files},
    )


def read_coverage_json(path: Path) -> CoverageData:
    """coverage.py's ``coverage json`` report."""
    data = json.loads(path.read_text(encoding="utf-8"))
    executed: dict[str, frozenset[int]] = {}
    missing: dict[str, frozenset[int]] = {}
    for name, info in data.get("files", {}).items():
        executed[name] = frozenset(info.get("executed_lines", []))
        missing[name] = frozenset(info.get("missing_lines", []))
    return CoverageData(executed, missing)


def go_module(worktree: Path) -> str:
    """The module path of ``worktree/go.mod`` (empty when there is none)."""
    gomod = worktree / "go.mod"
    if gomod.is_file():
        for line in gomod.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("module "):
                return line.split()[1].strip('"')
    return ""


def _go_lines(worktree: Path, rel: str, cache: dict[str, list[str] | None]) -> list[str] | None:
    """The masked lines of a Go file, one character per byte (profile columns are bytes)."""
    if rel not in cache:
        source = worktree / rel
        text = source.read_bytes().decode("latin-1") if source.is_file() else None
        cache[rel] = mask_go(text).split("\n") if text is not None else None
    return cache[rel]


def _block_lines(lines: list[str] | None, start: tuple[int, int], end: tuple[int, int]) -> set[int]:
    """The lines of a block ``start``..``end`` (1-based line and column) holding code."""
    if lines is None:
        return set(range(start[0], end[0] + 1))
    out = set()
    for number in range(start[0], min(end[0], len(lines)) + 1):
        text = lines[number - 1]
        if number == end[0]:
            text = text[: end[1] - 1]
        if number == start[0]:
            text = text[start[1] - 1 :]
        if text.strip(_NOT_CODE):
            out.add(number)
    return out


def read_go_profile(path: Path, worktree: Path) -> CoverageData:
    """A ``go test -coverprofile`` file, with paths made relative to ``worktree``."""
    module = go_module(worktree)
    executed: dict[str, set[int]] = {}
    missing: dict[str, set[int]] = {}
    cache: dict[str, list[str] | None] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        try:
            where, _, count = line.rsplit(" ", 2)
            name, span = where.rsplit(":", 1)
            first, last = span.split(",")
            start = (int(first.split(".")[0]), int(first.split(".")[1]))
            end = (int(last.split(".")[0]), int(last.split(".")[1]))
        except (ValueError, IndexError):
            continue
        rel = name[len(module) + 1 :] if module and name.startswith(module + "/") else name
        target = executed if int(count) > 0 else missing
        target.setdefault(rel, set()).update(
            _block_lines(_go_lines(worktree, rel, cache), start, end)
        )
    return _data(executed, missing)


def _char_counts(length: int, ranges: list[dict[str, int]]) -> list[int | None]:
    """Per character, the count of the innermost V8 range holding it."""
    counts: list[int | None] = [None] * length
    for r in sorted(ranges, key=lambda r: (r["startOffset"], -r["endOffset"])):
        start, end = max(0, r["startOffset"]), min(length, r["endOffset"])
        if start < end:
            counts[start:end] = [r["count"]] * (end - start)
    return counts


def _v8_file_lines(text: str, ranges: list[dict[str, int]]) -> tuple[set[int], set[int]]:
    counts = _char_counts(len(text), ranges)
    executed: set[int] = set()
    missing: set[int] = set()
    offset = 0
    for number, line in enumerate(mask_js(text).split("\n"), start=1):
        code = [i for i, ch in enumerate(line) if ch not in _NOT_CODE]
        if code:
            count = counts[offset + code[0]]
            if count is not None:
                (executed if count > 0 else missing).add(number)
        offset += len(line) + 1
    return executed, missing


def _code_lines(text: str) -> set[int]:
    """The lines of JS/TS ``text`` holding code (not only comments and brackets)."""
    lines = mask_js(text).split("\n")
    return {n for n, line in enumerate(lines, start=1) if line.strip(_NOT_CODE)}


def read_istanbul_json(path: Path, worktree: Path) -> CoverageData:
    """c8's (istanbul's) ``coverage-final.json``: a line runs when a statement starting
    on it ran. Files outside ``worktree`` and under ``node_modules`` are left out."""
    roots = (worktree, worktree.resolve())
    executed: dict[str, set[int]] = {}
    missing: dict[str, set[int]] = {}
    for name, info in json.loads(path.read_text(encoding="utf-8")).items():
        rel = _script_path(Path(name).as_uri() if name.startswith("/") else name, roots)
        if rel is None or not (worktree / rel).is_file():
            continue
        code = _code_lines((worktree / rel).read_text(encoding="utf-8", errors="replace"))
        runs, misses = executed.setdefault(rel, set()), missing.setdefault(rel, set())
        for key, where in info.get("statementMap", {}).items():
            line = int(where["start"]["line"])
            if line in code:
                (runs if info.get("s", {}).get(key, 0) > 0 else misses).add(line)
    return _data(executed, missing)


def _script_path(url: str, roots: tuple[Path, ...]) -> str | None:
    """The path under one of ``roots`` of a ``file://`` script (``None`` if elsewhere)."""
    if not url.startswith("file://"):
        return None
    path = Path(unquote(urlparse(url).path))
    for root in roots:
        if path.is_relative_to(root):
            rel = path.relative_to(root).as_posix()
            return None if "node_modules" in rel.split("/") else rel
    return None


def read_v8_coverage(folder: Path, worktree: Path) -> CoverageData:
    """The ``coverage-*.json`` files Node writes to ``NODE_V8_COVERAGE``, for the scripts
    of ``worktree`` (``node_modules`` left out). Each process's run of a script is read on
    its own; a line is executed when any run executed it."""
    roots = (worktree, worktree.resolve())
    texts: dict[str, str] = {}
    executed: dict[str, set[int]] = {}
    missing: dict[str, set[int]] = {}
    for report in sorted(folder.glob("coverage-*.json")):
        for script in json.loads(report.read_text(encoding="utf-8")).get("result", []):
            rel = _script_path(str(script.get("url", "")), roots)
            if rel is None or not (worktree / rel).is_file():
                continue
            if rel not in texts:
                texts[rel] = (worktree / rel).read_text(encoding="utf-8", errors="replace")
            found = [r for fn in script.get("functions", []) for r in fn.get("ranges", [])]
            runs, misses = _v8_file_lines(texts[rel], found)
            executed.setdefault(rel, set()).update(runs)
            missing.setdefault(rel, set()).update(misses)
    return _data(executed, missing)
