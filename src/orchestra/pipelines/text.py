"""Text built from what a user typed: commit subjects and Markdown that a task cannot break.

A task is free text: several paragraphs, Markdown headings, backticks, table pipes, HTML.
Commit subjects take its first line only, bounded, cut between words. Reports show it
escaped (inline) or fenced (whole), so nothing in it changes the report's structure.
"""

from __future__ import annotations

import re

SUBJECT_LIMIT = 72
"""Longest commit subject (git's convention: what ``git log --oneline`` shows whole)."""
ELLIPSIS = "…"

_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~])")
_FENCE = re.compile(r"`{3,}|~{3,}")


def task_title(task: str, limit: int = SUBJECT_LIMIT) -> str:
    """The task's first non-empty line, spaces collapsed, at most ``limit`` characters,
    cut between words (with an ellipsis) when longer."""
    line = next((ln for ln in task.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    if len(line) <= limit:
        return line
    room = max(1, limit - len(ELLIPSIS))
    cut = line[: room + 1]
    space = cut.rfind(" ")
    # A single word longer than the limit is cut where it must be.
    head = cut[:space] if space > 0 else line[:room]
    return head.rstrip(" ,;:.-") + ELLIPSIS


def commit_subject(prefix: str, task: str, limit: int = SUBJECT_LIMIT) -> str:
    """``prefix`` and the task's title, the whole at most ``limit`` characters."""
    return prefix + task_title(task, max(8, limit - len(prefix)))


def markdown_inline(text: object) -> str:
    """``text`` on one line with Markdown's and HTML's special characters escaped, for a
    sentence or a table cell of a report."""
    flat = " ".join(str(text).split())
    return _INLINE_SPECIAL.sub(r"\\\1", flat)


def markdown_block(text: str) -> str:
    """``text`` verbatim in a fenced block whose fence no line of ``text`` can close."""
    longest = max((len(m.group(0)) for m in _FENCE.finditer(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"
