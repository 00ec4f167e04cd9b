"""Tables of insight's surveys and transition plans (``orchestra.analytics``).

A survey answer is stored apart from who gave it: ``insight_survey_participants`` records
that a developer answered a round (one answer each), ``insight_survey_answers`` holds the
answers under a random id with the respondent's units and no name and no time, so an
answer cannot be joined back to its developer.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestra.store.base import Base


class InsightSurveyRoundRow(Base):
    """One round of the developer survey."""

    __tablename__ = "insight_survey_rounds"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class InsightSurveyParticipantRow(Base):
    """That a developer answered a round (not what they answered)."""

    __tablename__ = "insight_survey_participants"

    round_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    developer: Mapped[str] = mapped_column(String(200), primary_key=True)


class InsightSurveyAnswerRow(Base):
    """One anonymous answer: scores and the respondent's units only."""

    __tablename__ = "insight_survey_answers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    """A random UUID (no sequence that would order answers like participants)."""
    round_id: Mapped[str] = mapped_column(String(64), index=True)
    division: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tribe: Mapped[str | None] = mapped_column(String(200), nullable=True)
    squad: Mapped[str | None] = mapped_column(String(200), nullable=True)
    satisfaction: Mapped[int] = mapped_column(Integer)
    """1 (very dissatisfied) .. 5 (very satisfied)."""
    quality: Mapped[int] = mapped_column(Integer)
    """Perceived quality of the code produced with Orchestra, 1 .. 5."""
    recommend: Mapped[int] = mapped_column(Integer)
    """Willingness to recommend, 0 .. 10 (NPS)."""


class InsightPlanSnapshotRow(Base):
    """A transition plan's evaluation at one moment (its progress over time)."""

    __tablename__ = "insight_plan_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit: Mapped[str] = mapped_column(String(200), index=True)
    current_stage: Mapped[str] = mapped_column(String(32))
    target_stage: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    readiness: Mapped[float | None] = mapped_column(Float, nullable=True)
    criteria_met: Mapped[int] = mapped_column(Integer)
    criteria_known: Mapped[int] = mapped_column(Integer)
    criteria_total: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text)
    """The evaluation as JSON."""
