"""Large run artefacts (transcripts, diffs, test logs, reports) kept as files.

Workflows pass the returned reference (a path relative to the run's folder), never the
payload, so DBOS's checkpoints stay small.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select

from orchestra.errors import EngineError
from orchestra.store import Database
from orchestra.store.tables.engine import ArtifactRow


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ArtifactStore:
    """Files under ``<home>/runs/<run id>/`` plus one row per file in ``engine_artifacts``."""

    home: Path
    database: Database
    clock: Callable[[], datetime] = utcnow

    def run_dir(self, run_id: str) -> Path:
        return self.home / "runs" / run_id

    def _path(self, run_id: str, ref: str) -> Path:
        pure = PurePosixPath(ref)
        if pure.is_absolute() or ".." in pure.parts:
            raise EngineError(f"invalid artefact reference {ref!r}")
        return self.run_dir(run_id) / pure

    def put_text(self, run_id: str, ref: str, text: str, kind: str) -> str:
        """Write ``text`` at ``ref`` (overwriting: re-executed steps write the same ref)."""
        path = self._path(run_id, ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        digest = hashlib.sha256(data).hexdigest()
        with self.database.session() as session:
            row = session.scalar(
                select(ArtifactRow).where(ArtifactRow.run_id == run_id, ArtifactRow.path == ref)
            )
            if row is None:
                session.add(
                    ArtifactRow(
                        run_id=run_id,
                        kind=kind,
                        path=ref,
                        sha256=digest,
                        size=len(data),
                        created_at=self.clock(),
                    )
                )
            else:
                row.sha256, row.size = digest, len(data)
        return ref

    def put_json(self, run_id: str, ref: str, data: Any, kind: str) -> str:
        return self.put_text(run_id, ref, json.dumps(data, indent=1, default=str), kind)

    def get_text(self, run_id: str, ref: str) -> str:
        return self._path(run_id, ref).read_text(encoding="utf-8")

    def get_json(self, run_id: str, ref: str) -> Any:
        return json.loads(self.get_text(run_id, ref))

    def list_artifacts(self, run_id: str) -> list[ArtifactRow]:
        with self.database.session() as session:
            return list(
                session.scalars(
                    select(ArtifactRow).where(ArtifactRow.run_id == run_id).order_by(ArtifactRow.id)
                )
            )


POOL_REF = "pool.json"
"""The run's artefact naming the developer whose agent pool it runs with."""


def run_pool(artifacts: ArtifactStore, run_id: str) -> str | None:
    """The developer whose agent pool ``run_id`` was started with (``None``: the engine's
    own agents)."""
    try:
        data = artifacts.get_json(run_id, POOL_REF)
    except (OSError, ValueError):
        return None
    developer = data.get("developer") if isinstance(data, dict) else None
    return str(developer) if developer else None
