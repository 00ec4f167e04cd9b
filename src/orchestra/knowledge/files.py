"""Listing a repository's files the way git would: ``.gitignore`` respected.

In a git work tree the list comes from ``git ls-files`` (tracked plus untracked files
that no ignore rule excludes). Elsewhere a small ``.gitignore`` matcher walks the tree;
it supports the common syntax (globs, ``**``, anchored and directory-only patterns,
negation with ``!``) of every ``.gitignore`` from the root down.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ALWAYS_SKIPPED = frozenset({".git", ".hg", ".svn"})
"""Version-control folders, never ingested whatever ``.gitignore`` says."""


@dataclass(frozen=True)
class _Rule:
    base: str
    """Folder (posix, relative to the root, "" for the root) the rule's file sits in."""
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool


def _glob_to_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 1
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_gitignore(text: str, base: str = "") -> list[_Rule]:
    """Rules of one ``.gitignore`` found in folder ``base``."""
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        body = _glob_to_regex(line)
        regex = f"^{body}$" if anchored else f"^(?:.*/)?{body}$"
        rules.append(_Rule(base, re.compile(regex), negated, dir_only))
    return rules


def _ignored(rules: list[_Rule], rel: str, is_dir: bool) -> bool:
    verdict = False
    for rule in rules:
        if rule.base:
            if not rel.startswith(rule.base + "/"):
                continue
            local = rel[len(rule.base) + 1 :]
        else:
            local = rel
        if rule.dir_only and not is_dir:
            continue
        if rule.regex.match(local):
            verdict = not rule.negated
    return verdict


def walk_with_gitignore(root: Path) -> list[str]:
    """Relative posix paths of files under ``root`` not excluded by ``.gitignore`` files."""
    found: list[str] = []
    rules: list[_Rule] = []
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        rel_folder = "" if rel_folder == "." else rel_folder
        ignore_file = Path(folder) / ".gitignore"
        if ignore_file.is_file():
            rules = rules + parse_gitignore(
                ignore_file.read_text(encoding="utf-8", errors="replace"), rel_folder
            )
        keep = []
        for d in sorted(dirs):
            rel = f"{rel_folder}/{d}" if rel_folder else d
            if d not in ALWAYS_SKIPPED and not _ignored(rules, rel, True):
                keep.append(d)
        dirs[:] = keep
        for f in sorted(files):
            rel = f"{rel_folder}/{f}" if rel_folder else f
            if not _ignored(rules, rel, False) and not Path(folder, f).is_symlink():
                found.append(rel)
    return found


def git_files(root: Path) -> list[str] | None:
    """``git ls-files`` of the work tree containing ``root`` (paths relative to ``root``).

    None when ``root`` is not inside a git work tree or git is not installed.
    """
    git = shutil.which("git")
    if git is None:
        return None
    try:
        inside = subprocess.run(
            [git, "-C", str(root), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return None
        listed = subprocess.run(
            [git, "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            timeout=120,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    names = [n for n in listed.stdout.decode("utf-8", errors="surrogateescape").split("\0") if n]
    # Deleted-but-tracked files are still listed by --cached; keep what exists on disk.
    return sorted({n for n in names if (root / n).is_file() and not (root / n).is_symlink()})


def list_files(root: Path) -> list[str]:
    """Files to ingest under ``root``, relative posix paths, sorted."""
    listed = git_files(root)
    return listed if listed is not None else walk_with_gitignore(root)
