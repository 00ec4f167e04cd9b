"""Seeding the registry with the built-in agents, as the official publisher.

Idempotent: an agent whose built-in file is already its newest official version is left
alone (whatever others published since); a changed file (a new Orchestra release)
becomes a new approved version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from orchestra.registry.registry import AgentRegistry, digest_of, validate_definition
from orchestra.registry.seam import OFFICIAL_PUBLISHER
from orchestra.roster import BUILTIN_AGENTS_DIR
from orchestra.store.tables.registry import RegistryVersion


@dataclass
class SeedResult:
    """What seeding did."""

    published: list[str] = field(default_factory=list)
    """``name@vN`` of each version it published."""
    unchanged: int = 0


def seed_builtins(registry: AgentRegistry, directory: Path | None = None) -> SeedResult:
    """Publish and approve every built-in agent not yet published in its current form.

    All in one transaction with one audit entry (``registry.seed``).
    """
    folder = directory or BUILTIN_AGENTS_DIR
    files = sorted(p for p in folder.glob("*.md") if p.name not in {"README.md", "CHANGELOG.md"})
    result = SeedResult()
    now = registry.clock()
    with registry.audit.transaction() as tx, tx.session() as session:
        newest: dict[str, int] = {}
        official: dict[str, str] = {}
        for row in session.scalars(select(RegistryVersion).order_by(RegistryVersion.version)):
            newest[row.agent] = row.version
            if row.publisher == OFFICIAL_PUBLISHER:
                official[row.agent] = row.digest
        for path in files:
            text = path.read_text(encoding="utf-8")
            digest = digest_of(text)
            if official.get(path.stem) == digest:
                result.unchanged += 1
                continue
            definition = validate_definition(text, str(path))
            version = newest.get(definition.name, 0) + 1
            session.add(
                RegistryVersion(
                    agent=definition.name,
                    version=version,
                    state="approved",
                    definition=text,
                    digest=digest,
                    description=definition.description,
                    category=definition.category,
                    tags=" ".join(definition.specialties),
                    publisher=OFFICIAL_PUBLISHER,
                    published_at=now,
                    reviewed_by=OFFICIAL_PUBLISHER,
                    reviewed_at=now,
                    note="built-in",
                )
            )
            result.published.append(f"{definition.name}@v{version}")
        session.flush()
        if result.published:
            tx.append(
                OFFICIAL_PUBLISHER,
                "registry.seed",
                str(len(result.published)),
                {"published": result.published, "unchanged": result.unchanged},
            )
    return result
