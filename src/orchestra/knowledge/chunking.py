"""Cutting files into entries: Python at function/class boundaries, docs at headings.

Every chunk keeps its line range, and a title (qualified name or heading path) that the
embedding and BM25 both see. Pieces longer than ``max_lines`` are cut into windows.
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Chunk:
    """A piece of a file to store as one entry."""

    title: str
    text: str
    start_line: int
    """1-based, inclusive."""
    end_line: int
    kind: str
    """``code`` or ``doc``."""
    summary: str = ""
    """One line naming the symbol for both retrievers: qualified name and signature, the
    docstring's first line, and the enclosing class (Python only; empty elsewhere)."""

    @property
    def stored_text(self) -> str:
        """The entry's text: the summary line (as a comment) above the chunk's lines."""
        return f"# {self.summary}\n{self.text}" if self.summary else self.text


DOC_SUFFIXES = frozenset({".md", ".markdown", ".rst", ".txt", ".adoc"})
"""File suffixes stored as ``doc`` entries; everything else ingested is ``code``."""


def chunk_file(path: str, text: str, *, max_lines: int = 120) -> list[Chunk]:
    """Chunks of one file, chosen by its suffix."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in (".py", ".pyi"):
        chunks = chunk_python(path, text, max_lines=max_lines)
    elif suffix in (".md", ".markdown"):
        chunks = chunk_markdown(path, text, max_lines=max_lines)
    elif suffix == ".rst":
        chunks = chunk_rst(path, text, max_lines=max_lines)
    else:
        kind = "doc" if suffix in DOC_SUFFIXES else "code"
        chunks = chunk_blocks(path, text, max_lines=max_lines, kind=kind)
    return [c for c in chunks if c.text.strip()]


def _windows(
    title: str, lines: list[str], start: int, kind: str, max_lines: int, summary: str = ""
) -> list[Chunk]:
    """``lines`` (starting at 1-based line ``start``) as one chunk, or windows of it."""
    if len(lines) <= max_lines:
        return [Chunk(title, "\n".join(lines), start, start + len(lines) - 1, kind, summary)]
    out = []
    for part, offset in enumerate(range(0, len(lines), max_lines), start=1):
        piece = lines[offset : offset + max_lines]
        first = start + offset
        out.append(
            Chunk(
                f"{title} (part {part})",
                "\n".join(piece),
                first,
                first + len(piece) - 1,
                kind,
                summary,
            )
        )
    return out


# -- Python ---------------------------------------------------------------------------------


def chunk_python(path: str, text: str, *, max_lines: int = 120) -> list[Chunk]:
    """Functions, methods and classes (class header up to its first method) via ``ast``.

    Module-level code outside any definition becomes one ``<module>`` chunk per run of
    lines. Files that do not parse fall back to :func:`chunk_blocks`.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return chunk_blocks(path, text, max_lines=max_lines, kind="code")
    lines = text.splitlines()
    chunks: list[Chunk] = []
    covered: set[int] = set()
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

    def start_of(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> int:
        return min([node.lineno, *(d.lineno for d in node.decorator_list)])

    def visit(body: list[ast.stmt], prefix: str, owner: str) -> None:
        for node in body:
            if not isinstance(node, defs):
                continue
            first, last = start_of(node), node.end_lineno or node.lineno
            qualname = f"{prefix}{node.name}"
            covered.update(range(first, last + 1))
            summary = symbol_summary(node, qualname, owner)
            if isinstance(node, ast.ClassDef):
                inner = [n for n in node.body if isinstance(n, defs)]
                head_end = (start_of(inner[0]) - 1) if inner else last
                chunks.extend(
                    _windows(
                        f"{path}::{qualname} (class)",
                        lines[first - 1 : head_end],
                        first,
                        "code",
                        max_lines,
                        summary,
                    )
                )
                visit(node.body, f"{qualname}.", _class_context(node, qualname))
            else:
                chunks.extend(
                    _windows(
                        f"{path}::{qualname}",
                        lines[first - 1 : last],
                        first,
                        "code",
                        max_lines,
                        summary,
                    )
                )

    visit(tree.body, "", f"in {path}")
    run: list[int] = []
    for number in range(1, len(lines) + 1):
        if number in covered:
            if run:
                chunks.extend(_module_run(path, lines, run, max_lines))
                run = []
        else:
            run.append(number)
    if run:
        chunks.extend(_module_run(path, lines, run, max_lines))
    chunks.sort(key=lambda c: c.start_line)
    return chunks


def _first_line(doc: str | None) -> str:
    """The docstring's first non-empty line, shortened to 160 characters."""
    for line in (doc or "").strip().splitlines():
        if line.strip():
            text = " ".join(line.split())
            return text if len(text) <= 160 else text[:157] + "..."
    return ""


def _class_context(node: ast.ClassDef, qualname: str) -> str:
    """How a method names its class: ``in class peekable: Wrap an iterator...``."""
    doc = _first_line(ast.get_docstring(node))
    return f"in class {qualname}" + (f": {doc}" if doc else "")


def symbol_summary(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, qualname: str, owner: str
) -> str:
    """``qualname(signature) -> returns — first docstring line — enclosing class/module``.

    What a question names (the symbol, its arguments, what it is for) put first, so it
    survives the embedding model's 256-token cut of long chunks, and is in every window.
    """
    if isinstance(node, ast.ClassDef):
        bases = ", ".join(ast.unparse(b) for b in node.bases)
        head = f"class {qualname}" + (f"({bases})" if bases else "")
    else:
        head = f"{qualname}({ast.unparse(node.args)})"
        if node.returns is not None:
            head += f" -> {ast.unparse(node.returns)}"
    if len(head) > 200:
        head = head[:197] + "..."
    parts = [head, _first_line(ast.get_docstring(node)), owner]
    return " — ".join(p for p in parts if p)


def _module_run(path: str, lines: list[str], run: list[int], max_lines: int) -> list[Chunk]:
    body = [lines[n - 1] for n in run]
    if sum(1 for line in body if line.strip()) < 2:
        return []
    return _windows(f"{path}::<module>", body, run[0], "code", max_lines)


# -- Markdown and reStructuredText ----------------------------------------------------------

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _sections(
    path: str, lines: list[str], headings: list[tuple[int, int, str]], max_lines: int
) -> list[Chunk]:
    """Chunks between headings ``(line index, level, title)``; titles are heading paths."""
    chunks: list[Chunk] = []
    bounds = [*headings, (len(lines), 0, "")]
    if bounds[0][0] > 0:
        chunks.extend(_windows(f"{path}", lines[: bounds[0][0]], 1, "doc", max_lines))
    trail: list[tuple[int, str]] = []
    for (index, level, title), (next_index, _, _) in itertools.pairwise(bounds):
        trail = [(lv, t) for lv, t in trail if lv < level] + [(level, title)]
        heading_path = " > ".join(t for _, t in trail)
        chunks.extend(
            _windows(f"{path}#{heading_path}", lines[index:next_index], index + 1, "doc", max_lines)
        )
    return chunks


def chunk_markdown(path: str, text: str, *, max_lines: int = 120) -> list[Chunk]:
    """Sections at ATX headings (``#`` … ``######``), ignoring ``#`` inside code fences."""
    lines = text.splitlines()
    headings: list[tuple[int, int, str]] = []
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _MD_HEADING.match(line)
        if match:
            headings.append((i, len(match.group(1)), match.group(2)))
    return _sections(path, lines, headings, max_lines)


_RST_ADORN = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")


def chunk_rst(path: str, text: str, *, max_lines: int = 120) -> list[Chunk]:
    """Sections at underlined titles; heading levels in order of first appearance."""
    lines = text.splitlines()
    headings: list[tuple[int, int, str]] = []
    levels: dict[str, int] = {}
    for i in range(1, len(lines)):
        title = lines[i - 1].strip()
        match = _RST_ADORN.match(lines[i])
        if match and title and not _RST_ADORN.match(lines[i - 1]) and len(lines[i]) >= len(title):
            char = match.group(1)
            level = levels.setdefault(char, len(levels) + 1)
            start = i - 2 if i >= 2 and lines[i - 2].strip() == lines[i].strip() else i - 1
            headings.append((start, level, title))
    return _sections(path, lines, headings, max_lines)


# -- everything else ------------------------------------------------------------------------


def chunk_blocks(path: str, text: str, *, max_lines: int = 120, kind: str = "code") -> list[Chunk]:
    """Blank-line-separated blocks at brace depth 0, merged up to ``max_lines // 2`` lines.

    Cutting only where braces balance keeps a C/JS/Go/Rust function in one piece when it
    fits; a lone huge block is cut into windows.
    """
    lines = text.splitlines()
    target = max(8, max_lines // 2)
    chunks: list[Chunk] = []
    depth = 0
    block_start = 0
    for i, line in enumerate(lines):
        depth = max(0, depth + line.count("{") - line.count("}"))
        at_boundary = depth == 0 and (not line.strip()) and i - block_start >= target
        if at_boundary:
            chunks.extend(
                _windows(
                    f"{path}:{block_start + 1}",
                    lines[block_start:i],
                    block_start + 1,
                    kind,
                    max_lines,
                )
            )
            block_start = i + 1
    if block_start < len(lines):
        chunks.extend(
            _windows(
                f"{path}:{block_start + 1}", lines[block_start:], block_start + 1, kind, max_lines
            )
        )
    return chunks
