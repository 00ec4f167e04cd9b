"""Logouts shared by every worker: ended login sessions kept in the database.

A session cookie is signed, not stored, so a logout must be remembered where every worker
process looks: :class:`SessionRevocations` keeps the ended session ids (until the session
would have expired anyway) in ``identity_revoked_sessions``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from orchestra.store import Database
from orchestra.store.tables.identity import RevokedSession


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


class SessionRevocations:
    """Ended login sessions in the database (any worker sharing it refuses them)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def revoke(self, session_id: str, until: float, now: float) -> None:
        """Record that ``session_id`` ended; forget sessions that expired before ``now``."""
        try:
            with self._database.session() as session:
                session.execute(delete(RevokedSession).where(RevokedSession.expires_at < _at(now)))
                if session.get(RevokedSession, session_id) is None:
                    session.add(RevokedSession(session_id=session_id, expires_at=_at(until)))
        except IntegrityError:
            pass  # another worker recorded the same logout at the same moment

    def is_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` was ended by a logout."""
        with self._database.session() as session:
            found = session.scalar(
                select(RevokedSession.session_id).where(RevokedSession.session_id == session_id)
            )
        return found is not None
