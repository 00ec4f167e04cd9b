"""Tables owned by the gateway domain (written by ``orchestra.accounting``).

Money is stored as integer nano-dollars (1e-9 USD) in ``BIGINT`` columns: exact on both
backends, summable in SQL, and usable in the atomic ``spent + reserved + amount <= cap``
check that budgets rely on. Other domains' rows (developers, teams, runs) are referred to
by name or id string, never by foreign key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from orchestra.store.base import Base


class GatewayKey(Base):
    """A virtual API key: only its keyed hash and a display prefix are stored."""

    __tablename__ = "gateway_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    developer: Mapped[str] = mapped_column(String(200), index=True)
    team: Mapped[str | None] = mapped_column(String(200), nullable=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    holder: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The worker (executor id) holding a run's key; ``None`` for other keys."""


class GatewayBudget(Base):
    """A dollar budget on one subject (developer, team at any level, organisation, run)."""

    __tablename__ = "gateway_budgets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    scope: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(10))
    cap_nano: Mapped[int] = mapped_column(BigInteger)
    soft_pct: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(String(20), default="api")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_gateway_budgets_scope_subject", "scope", "subject"),)


class GatewayBudgetWindow(Base):
    """Spend and reservations of one budget in one period (the row the atomic check updates)."""

    __tablename__ = "gateway_budget_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    budget_id: Mapped[str] = mapped_column(String(40))
    period_start: Mapped[str] = mapped_column(String(32))
    cap_nano: Mapped[int] = mapped_column(BigInteger)
    spent_nano: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_nano: Mapped[int] = mapped_column(BigInteger, default=0)
    alerted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ux_gateway_budget_windows_budget_period", "budget_id", "period_start", unique=True),
    )


class GatewayReservationHold(Base):
    """The part of one reservation held on one budget window, until settled or expired."""

    __tablename__ = "gateway_reservation_holds"

    reservation_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    window_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount_nano: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class GatewayLedgerEntry(Base):
    """One model call. Append-only: the library never updates or deletes a row."""

    __tablename__ = "gateway_ledger"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    org: Mapped[str | None] = mapped_column(String(200), nullable=True)
    division: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tribe: Mapped[str | None] = mapped_column(String(200), nullable=True)
    squad: Mapped[str | None] = mapped_column(String(200), nullable=True)
    developer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(200), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    step: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tier: Mapped[str | None] = mapped_column(String(40), nullable=True)
    requested_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    served_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(200), nullable=True)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_nano: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    fallback_path: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(String(40))
    error_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    txid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """PostgreSQL: the id of the transaction that wrote the row (the column's default,
    ``pg_current_xact_id()``, set by the migration, indexed), which says when the
    row is safe to fold into the rollups (:mod:`orchestra.accounting.rollups`).
    SQLite leaves it empty: its ``rowid`` order is commit order."""

    __table_args__ = (
        # Over the rows that have one: on SQLite, where the column stays empty, no row.
        Index(
            "ix_gateway_ledger_txid",
            "txid",
            postgresql_where=text("txid IS NOT NULL"),
            sqlite_where=text("txid IS NOT NULL"),
        ),
    )


class GatewayAuditEntry(Base):
    """One management action; ``entry_hash`` covers the entry and ``prev_hash``."""

    __tablename__ = "gateway_audit"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class GatewayAuditHead(Base):
    """The chain's head (last sequence number and hash): lets verify notice a removed tail."""

    __tablename__ = "gateway_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class GatewayRateCounter(Base):
    """Requests and tokens of one subject in one minute (shared rate limits on PostgreSQL)."""

    __tablename__ = "gateway_rate_counters"

    subject: Mapped[str] = mapped_column(String(250), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
