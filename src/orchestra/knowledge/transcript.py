"""Deterministic extraction of decisions and facts from a Claude Code transcript.

No model is called: a sentence is kept when it carries an explicit marker ("we decided",
"convention:", "root cause", ...) or is a bullet under a heading such as "Decisions" or
"Conventions". Mentioning a password or an API key is *not* a marker; credential talk
is not knowledge, and whatever is kept is scrubbed of secrets before it is stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_TRANSCRIPT_BYTES = 20_000_000
"""Only the last 20 MB of a transcript are read; compaction happens long before that."""
MAX_FACTS = 50
_MIN_CHARS = 25
_MAX_CHARS = 1200


@dataclass(frozen=True)
class Fact:
    """A sentence or bullet worth keeping, with the kind it was classified as."""

    text: str
    kind: str


_MARKERS: list[tuple[str, re.Pattern[str]]] = [
    (
        "decision",
        re.compile(
            r"(?i)\b(?:we|i|the team)(?:'ve| have)? (?:decided|agreed|chose|opted|settled on)\b"
            r"|\bdecision:\s|\bwe(?:'ll| will) (?:go with|use|keep|switch to)\b|\bgoing with\b"
        ),
    ),
    (
        "convention",
        re.compile(
            r"(?i)\bconvention:\s|\bby convention\b|\bthe rule is\b|\bhouse style\b"
            r"|\b(?:always|never) (?:use|call|import|commit|run|put|write|name|return|raise)\b"
        ),
    ),
    (
        "bug",
        re.compile(
            r"(?i)\broot cause\b|\bthe bug (?:was|is)\b|\bthe (?:issue|problem) was\b"
            r"|\bfixed (?:it )?by\b|\bcaused by\b"
        ),
    ),
    ("pattern", re.compile(r"(?i)\bpattern:\s|\bthe pattern (?:is|here)\b")),
    ("api", re.compile(r"(?i)\bapi:\s|\b(?:endpoint|the api) (?:returns|expects|requires)\b")),
    ("note", re.compile(r"(?i)\b(?:note|important|remember|gotcha|fact|learned|lesson):\s")),
]

_HEADING = re.compile(r"^\s{0,3}(?:#{1,6}\s+|\*\*)(?P<title>[^*#]+?)(?:\*\*)?:?\s*$")
_HEADING_KINDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)decision"), "decision"),
    (re.compile(r"(?i)convention|rules?\b|guideline"), "convention"),
    (re.compile(r"(?i)bug|root cause|fix"), "bug"),
    (re.compile(r"(?i)pattern"), "pattern"),
    (re.compile(r"(?i)fact|learn|lesson|gotcha|note|takeaway"), "note"),
]
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?P<text>.+)$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(])")


def _message_texts(record: dict[str, Any]) -> Iterator[str]:
    """Prose of user and assistant messages; tool calls and tool output are left out
    (file contents and command output are noise here and the likeliest to hold secrets)."""
    if record.get("type") not in ("user", "assistant"):
        return
    message = record.get("message")
    if not isinstance(message, dict):
        return
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                if isinstance(text, str):
                    yield text


def read_transcript(path: Path) -> list[str]:
    """Message texts of a transcript JSONL file, oldest first; malformed lines skipped."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size > MAX_TRANSCRIPT_BYTES:
            handle.seek(size - MAX_TRANSCRIPT_BYTES)
            handle.readline()  # drop the partial first line
        raw = handle.read()
    texts: list[str] = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            texts.extend(_message_texts(record))
    return texts


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().strip("*_ ")).strip()


def extract_facts(texts: Iterable[str], *, limit: int = MAX_FACTS) -> list[Fact]:
    """Decisions, conventions, bugs and notes found in message texts, deduplicated."""
    facts: list[Fact] = []
    seen: set[str] = set()
    for message in texts:
        for candidate, kind in _candidates(message):
            text = _clean(candidate)
            key = text.lower()
            if _MIN_CHARS <= len(text) <= _MAX_CHARS and key not in seen:
                seen.add(key)
                facts.append(Fact(text, kind))
        if len(facts) >= limit:
            break
    return facts[:limit]


def _candidates(message: str) -> Iterator[tuple[str, str]]:
    """``(text, kind)`` pairs worth keeping: bullets under a recognised heading, and
    sentences carrying a marker; code fences are skipped."""
    section_kind: str | None = None
    in_fence = False
    for line in message.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        heading = _HEADING.match(line)
        if heading:
            title = heading.group("title")
            section_kind = next((k for p, k in _HEADING_KINDS if p.search(title)), None)
            continue
        if not line.strip():
            continue
        bullet = _BULLET.match(line)
        if bullet and section_kind:
            yield bullet.group("text"), section_kind
            continue
        for sentence in _SENTENCE.split(bullet.group("text") if bullet else line):
            kind = next((k for k, marker in _MARKERS if marker.search(sentence)), None)
            if kind is not None:
                yield sentence, kind
