"""Tables owned by ``orchestra.identity``: web login sessions ended by a logout.

A session cookie is stateless (signed); a logout is recorded here so that every worker
process sharing the database refuses the session from then on.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from orchestra.store.base import Base


class RevokedSession(Base):
    """A login session ended before its expiry (logout)."""

    __tablename__ = "identity_revoked_sessions"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    """When the session would have ended anyway: the row may be removed after that."""
