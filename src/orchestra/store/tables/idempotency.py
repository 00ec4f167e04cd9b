"""The gateway's idempotency keys: one row per (account, key), its state and its answer.

Times are Unix seconds (``float``) from the replica's clock: compared the same way on
SQLite and PostgreSQL, with no time-zone handling.
"""

from __future__ import annotations

from sqlalchemy import Float, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestra.store.base import Base


class IdempotencyKeyRow(Base):
    """A model call made under an ``Idempotency-Key``: in flight (with its lease) or done
    (with the answer a repeat is given)."""

    __tablename__ = "gateway_idempotency_keys"

    account: Mapped[str] = mapped_column(String(200), primary_key=True)
    """The developer who owns the calling key: another account never sees the row."""
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the request body: the same key with another body is refused."""
    state: Mapped[str] = mapped_column(String(16))
    """``in_flight`` or ``done``."""
    owner: Mapped[str] = mapped_column(String(200))
    """The replica call holding the key (``host:pid:token``)."""
    lease_until: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    headers: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The answer's headers as a JSON list of ``[name, value]``."""
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The gateway request (and ledger entry) that made the call."""
