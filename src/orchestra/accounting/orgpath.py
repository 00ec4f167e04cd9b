"""Resolving a key's team to the organisation units above it.

The organisation tables belong to the org domain; this module reads them by name with
plain SQL (no foreign keys, no import of that domain's models), lazily and cached, so
keys created before the organisation is synced resolve once it is. A missing table or
unknown team resolves to what the key itself says (its team as the squad).
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from orchestra.accounting.attribution import OrgPath
from orchestra.store import Database


class OrgTableResolver:
    """``(developer, team) -> OrgPath`` from the ``org_units``/``org_developers`` tables."""

    def __init__(self, db: Database, *, ttl_s: float = 30.0) -> None:
        self._db = db
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str | None], tuple[float, OrgPath]] = {}

    def __call__(self, developer: str, team: str | None) -> OrgPath:
        """The organisation path of ``developer`` (in ``team``), cached for the TTL."""
        key = (developer, team)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        path = self._resolve(developer, team)
        with self._lock:
            self._cache[key] = (now + self._ttl, path)
        return path

    def _resolve(self, developer: str, team: str | None) -> OrgPath:
        levels: dict[str, str] = {}
        org: str | None = None
        try:
            with self._db.engine.connect() as conn:
                unit = team
                if unit is None:
                    unit = conn.execute(
                        text("SELECT unit FROM org_developers WHERE name = :n"), {"n": developer}
                    ).scalar()
                seen: set[str] = set()
                first = True
                while unit and unit not in seen:
                    seen.add(unit)
                    row = conn.execute(
                        text("SELECT kind, parent FROM org_units WHERE name = :n"), {"n": unit}
                    ).first()
                    if row is None:
                        break
                    kind, parent = str(row[0]), row[1]
                    if first and kind not in ("squad", "tribe", "division"):
                        break
                    levels.setdefault(kind, unit)
                    first = False
                    unit = parent
                org = conn.execute(
                    text("SELECT name FROM org_organisation ORDER BY id LIMIT 1")
                ).scalar()
        except SQLAlchemyError:
            pass  # organisation tables not created (yet): fall back to the key's own team
        if team is not None and not levels:
            levels["squad"] = team
        return OrgPath(
            org=org,
            division=levels.get("division"),
            tribe=levels.get("tribe"),
            squad=levels.get("squad"),
        )
