"""Helpers that write agent files for tests: valid by default, each prompt distinct."""

from __future__ import annotations

import json
import random
from pathlib import Path

# A vocabulary large enough that prompts drawn from different seeds share few 3-shingles.
_WORDS = (
    "parser cache index schema latency queue retry timeout budget ledger token stream "
    "socket thread lock mutex channel buffer offset cursor batch shard replica leader "
    "follower quorum snapshot journal commit rollback savepoint migration column table "
    "view trigger constraint foreign primary unique partial covering btree hash bloom "
    "filter sketch histogram quantile percentile median outlier sampling window tumbling "
    "sliding session watermark checkpoint barrier operator reducer mapper combiner "
    "partitioner serializer codec compression checksum digest signature certificate "
    "keystore vault rotation lease ticket nonce salt pepper envelope wrapper adapter "
    "facade proxy decorator visitor builder factory registry locator resolver loader "
    "scanner lexer grammar production terminal symbol closure scope frame stack heap "
    "arena allocator collector finalizer reference pointer handle descriptor inode "
    "volume mount overlay layer image container pod node cluster region zone edge"
)
_VOCABULARY = _WORDS.split()

SECTIONS = ("Role", "How you work", "What you hand back", "When you stop", "Never")


def prompt_for(seed: str, words_per_section: int = 60) -> str:
    """A prompt with the five required sections, words drawn from ``seed``."""
    rng = random.Random(seed)
    parts = []
    for section in SECTIONS:
        words = " ".join(rng.choice(_VOCABULARY) for _ in range(words_per_section))
        parts.append(f"## {section}\n{words}.\n")
    return "\n".join(parts)


def agent_text(
    name: str,
    *,
    tier: str = "haiku",
    model: str | None = None,
    fallback: str | None = "sonnet",
    category: str = "languages",
    tools: str = "Read, Grep, Glob, Edit, Write, Bash",
    specialties: str = "[python, pytest, typing]",
    description: str | None = None,
    body: str | None = None,
    extra: str = "",
) -> str:
    """The text of an agent file; keyword arguments change one field each."""
    fallback_text = "null" if fallback is None else fallback
    description = description or f"Implements things for {name}. Use when {name} work is due."
    return (
        "---\n"
        f"name: {name}\n"
        f"description: {json.dumps(description)}\n"
        f"tools: {tools}\n"
        f"model: {model or tier}\n"
        f"category: {category}\n"
        f"tier: {tier}\n"
        f"fallback_tier: {fallback_text}\n"
        f"specialties: {specialties}\n"
        "decides:\n"
        "  - local naming\n"
        "  - helper structure\n"
        "escalates:\n"
        '  - "public API changes -> tech-lead"\n'
        '  - "security questions -> security-auditor"\n'
        f"{extra}"
        "---\n"
        f"{body if body is not None else prompt_for(name)}"
    )


def write_agent(folder: Path, name: str, **fields: object) -> Path:
    """Write ``folder/<name>.md`` (see :func:`agent_text`) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(agent_text(name, **fields), encoding="utf-8")  # type: ignore[arg-type]
    return path
