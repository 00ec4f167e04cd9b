"""Searching the registry by name, description, tags and category."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestra.registry.model import AgentSummary

WEIGHTS = {"name": 4, "tags": 3, "category": 2, "description": 1}
"""How much a term found in each field counts."""


@dataclass(frozen=True)
class SearchHit:
    """An agent that matched, its score and the fields the terms were found in."""

    summary: AgentSummary
    score: int
    fields: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and the API."""
        return {**self.summary.to_dict(), "score": self.score, "fields": list(self.fields)}


def _fields(summary: AgentSummary) -> dict[str, str]:
    version = summary.served or summary.latest
    return {
        "name": summary.agent,
        "tags": " ".join(version.tags),
        "category": version.category,
        "description": version.description.lower(),
    }


def search(
    summaries: list[AgentSummary],
    query: str,
    *,
    category: str | None = None,
    tag: str | None = None,
) -> list[SearchHit]:
    """Agents where every term of ``query`` appears in a field, best first.

    ``category`` and ``tag`` filter exactly. An empty query with a filter lists what the
    filter keeps.
    """
    terms = query.lower().split()
    hits: list[SearchHit] = []
    for summary in summaries:
        fields = _fields(summary)
        if category is not None and fields["category"] != category:
            continue
        if tag is not None and tag not in fields["tags"].split():
            continue
        score, matched = 0, set()
        for term in terms:
            found = [f for f, text in fields.items() if term in text]
            if not found:
                break
            score += sum(WEIGHTS[f] for f in found)
            matched.update(found)
        else:
            hits.append(SearchHit(summary, score, tuple(f for f in WEIGHTS if f in matched)))
    return sorted(hits, key=lambda h: (-h.score, h.summary.agent))
