"""Developer surveys: satisfaction, perceived quality and willingness to recommend.

One answer per developer per round. Who answered and what was answered are stored apart
(``orchestra.store.tables.insight2``), so an answer cannot be joined back to its developer.
A group's results are shown only when at least :data:`SURVEY_MIN_GROUP` developers
answered (k-anonymity); a smaller group reads "too few answers". Developers are never a
group.
"""

from __future__ import annotations

import difflib
import re
import statistics
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestra.analytics.errors import (
    AlreadyAnswered,
    AnalyticsError,
    InvalidAnswer,
    NotVisible,
    RoundClosed,
    UnknownRound,
    UnknownUnit,
)
from orchestra.analytics.scope import Principal
from orchestra.org import OrgTree, load_org
from orchestra.store import Database
from orchestra.store.tables.insight2 import (
    InsightSurveyAnswerRow,
    InsightSurveyParticipantRow,
    InsightSurveyRoundRow,
)

SURVEY_MIN_GROUP = 5
"""Fewest respondents a group's results are shown for."""
TOO_FEW = "too few answers"
SATISFIED = 4
"""The lowest satisfaction answer (of 1-5) that counts as satisfied."""
QUESTIONS = {
    "satisfaction": (1, 5, "How satisfied are you with working with Orchestra's agents?"),
    "quality": (1, 5, "How good is the code the agents help you produce?"),
    "recommend": (0, 10, "How likely are you to recommend Orchestra to a colleague?"),
}
"""Question -> (lowest, highest, wording)."""
_ROUND_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class SurveyRound:
    """A survey round and how many answered it."""

    id: str
    title: str
    opened_by: str
    opened_at: datetime
    closed_at: datetime | None
    respondents: int


@dataclass(frozen=True)
class SurveyResult:
    """A group's results for a round; figures only with at least :data:`SURVEY_MIN_GROUP`."""

    round_id: str
    unit: str
    kind: str
    respondents: int
    satisfaction: float | None
    quality: float | None
    nps: float | None
    """Promoters (9-10) minus detractors (0-6), in percent of respondents."""
    hidden: str | None = None
    """Why figures are not shown (too few answers, or the rest of the unit above would be
    too few: its figures minus these would show them)."""
    satisfied: float | None = None
    """Share of respondents satisfied: 4 or 5 on the 1-5 satisfaction question (CSAT)."""

    @property
    def shown(self) -> bool:
        """Whether the figures are shown."""
        return self.hidden is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; a small group's figures read "too few answers"."""
        base: dict[str, Any] = {"round": self.round_id, "unit": self.unit, "kind": self.kind}
        if self.respondents < SURVEY_MIN_GROUP:
            return {**base, "respondents": f"fewer than {SURVEY_MIN_GROUP}", "result": TOO_FEW}
        if self.hidden is not None:
            return {**base, "respondents": self.respondents, "result": self.hidden}
        return {
            **base,
            "respondents": self.respondents,
            "satisfaction": self.satisfaction,
            "quality": self.quality,
            "nps": self.nps,
            "satisfied": self.satisfied,
        }


def _tree(db: Database) -> OrgTree:
    tree = load_org(db)
    if tree is None:
        raise AnalyticsError("the organisation is not stored yet", hint="run `orchestra org sync`")
    return tree


def _round(session: Session, round_id: str) -> InsightSurveyRoundRow:
    row = session.get(InsightSurveyRoundRow, round_id)
    if row is None:
        names = list(session.scalars(select(InsightSurveyRoundRow.id)))
        close = difflib.get_close_matches(round_id, names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "`orchestra survey list`"
        raise UnknownRound(f"no survey round {round_id!r}", hint=hint)
    return row


def _respondents(session: Session, round_id: str) -> int:
    return int(
        session.scalar(select(func.count()).where(InsightSurveyParticipantRow.round_id == round_id))
        or 0
    )


def open_survey_round(
    db: Database, principal: Principal, round_id: str, title: str, *, now: datetime | None = None
) -> SurveyRound:
    """Open a round (admins and leads)."""
    if not {"admin", "lead"} & set(principal.roles):
        raise NotVisible("only admins and leads open survey rounds", hint="ask an admin")
    if not _ROUND_ID.match(round_id):
        raise InvalidAnswer(
            f"round name {round_id!r} cannot be used",
            hint="lower case, digits, . _ -; e.g. 2026-q4",
        )
    at = now or datetime.now(UTC)
    with db.session() as session:
        if session.get(InsightSurveyRoundRow, round_id) is not None:
            raise RoundClosed(f"round {round_id!r} exists already", hint="give a new name")
        session.add(
            InsightSurveyRoundRow(
                id=round_id, title=title, opened_by=principal.name, opened_at=at, closed_at=None
            )
        )
    return SurveyRound(round_id, title, principal.name, at, None, 0)


def close_survey_round(
    db: Database, principal: Principal, round_id: str, *, now: datetime | None = None
) -> SurveyRound:
    """Close a round: no more answers (admins and leads). Closing a closed round keeps
    its first closing time."""
    if not {"admin", "lead"} & set(principal.roles):
        raise NotVisible("only admins and leads close survey rounds", hint="ask an admin")
    with db.session() as session:
        row = _round(session, round_id)
        closed = row.closed_at or now or datetime.now(UTC)
        row.closed_at = closed
        return SurveyRound(
            row.id,
            row.title,
            row.opened_by,
            _utc(row.opened_at),
            _utc(closed),
            _respondents(session, round_id),
        )


def _utc(value: datetime) -> datetime:
    """A stored time with its offset (SQLite gives back UTC times without one)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def list_survey_rounds(db: Database) -> list[SurveyRound]:
    """Every round, newest first, with its number of respondents."""
    with db.session() as session:
        counts = dict(
            session.execute(
                select(InsightSurveyParticipantRow.round_id, func.count()).group_by(
                    InsightSurveyParticipantRow.round_id
                )
            ).all()
        )
        rows = session.scalars(
            select(InsightSurveyRoundRow).order_by(InsightSurveyRoundRow.opened_at.desc())
        )
        return [
            SurveyRound(
                r.id, r.title, r.opened_by, r.opened_at, r.closed_at, int(counts.get(r.id, 0))
            )
            for r in rows
        ]


def _units_of(tree: OrgTree, unit: str | None) -> dict[str, str]:
    """Kind -> name of ``unit`` and every unit above it."""
    found: dict[str, str] = {}
    while unit is not None and (u := tree.unit(unit)) is not None:
        found.setdefault(u.kind, u.name)
        unit = u.parent
    return found


def _check(name: str, value: int) -> int:
    low, high, _ = QUESTIONS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidAnswer(
            f"{name} must be a whole number from {low} to {high}", hint=QUESTIONS[name][2]
        )
    return value


def answer_survey(
    db: Database,
    developer: str,
    round_id: str,
    *,
    satisfaction: int,
    quality: int,
    recommend: int,
) -> None:
    """Record ``developer``'s answer to ``round_id`` (once; the answer is stored without
    their name)."""
    scores = {
        "satisfaction": _check("satisfaction", satisfaction),
        "quality": _check("quality", quality),
        "recommend": _check("recommend", recommend),
    }
    tree = _tree(db)
    person = next((d for d in tree.developers if d.name == developer), None)
    if person is None:
        raise NotVisible(
            f"{developer!r} is not a developer of the organisation",
            hint="surveys are answered by the organisation's developers",
        )
    units = _units_of(tree, person.unit)
    try:
        with db.session() as session:
            if _round(session, round_id).closed_at is not None:
                raise RoundClosed(f"round {round_id!r} is closed", hint="answer an open round")
            session.add(InsightSurveyParticipantRow(round_id=round_id, developer=developer))
            session.flush()
            session.add(
                InsightSurveyAnswerRow(
                    id=str(uuid.uuid4()),
                    round_id=round_id,
                    division=units.get("division"),
                    tribe=units.get("tribe"),
                    squad=units.get("squad"),
                    **scores,
                )
            )
    except IntegrityError as exc:
        raise AlreadyAnswered(
            f"{developer!r} already answered round {round_id!r}",
            hint="one answer per developer per round",
        ) from exc


def _nps(recommend: list[int]) -> float:
    promoters = sum(1 for r in recommend if r >= 9)
    detractors = sum(1 for r in recommend if r <= 6)
    return 100 * (promoters - detractors) / len(recommend)


def _filter(tree: OrgTree, unit: str | None) -> tuple[str, str, list[Any]]:
    if unit is None or unit == tree.name:
        return "organisation", tree.name, []
    found = tree.unit(unit)
    if found is None or found.kind not in ("division", "tribe", "squad"):
        raise UnknownUnit(
            f"no division, tribe or squad is called {unit!r}",
            hint="survey results are per unit; a developer's are never shown",
        )
    column = getattr(InsightSurveyAnswerRow, found.kind)
    return found.kind, found.name, [column == found.name]


def _scores(session: Session, round_id: str, where: list[Any]) -> list[tuple[int, int, int]]:
    rows = session.execute(
        select(
            InsightSurveyAnswerRow.satisfaction,
            InsightSurveyAnswerRow.quality,
            InsightSurveyAnswerRow.recommend,
        ).where(InsightSurveyAnswerRow.round_id == round_id, *where)
    )
    return [(int(a), int(b), int(c)) for a, b, c in rows]


def _ancestors(tree: OrgTree, name: str) -> list[str | None]:
    """The units above ``name``, nearest first, ending with the organisation (``None``)."""
    found: list[str | None] = []
    unit = tree.unit(name)
    while unit is not None and unit.parent is not None:
        found.append(unit.parent)
        unit = tree.unit(unit.parent)
    return [*found, None]


def survey_results(db: Database, round_id: str, *, unit: str | None = None) -> SurveyResult:
    """The results of ``round_id`` for ``unit`` (a division, tribe or squad; default: the
    organisation). Figures are shown only with at least :data:`SURVEY_MIN_GROUP`
    respondents, and only if, for every unit above, the rest of it (its respondents minus
    these) is none or at least :data:`SURVEY_MIN_GROUP` too, so that subtracting one
    group's figures from another's cannot single out a smaller group."""
    tree = _tree(db)
    kind, name, where = _filter(tree, unit)
    with db.session() as session:
        _round(session, round_id)
        rows = _scores(session, round_id, where)
        above = (
            []
            if kind == "organisation"
            else [
                len(_scores(session, round_id, _filter(tree, a)[2])) for a in _ancestors(tree, name)
            ]
        )
    if len(rows) < SURVEY_MIN_GROUP:
        return SurveyResult(round_id, name, kind, len(rows), None, None, None, TOO_FEW)
    if any(0 < count - len(rows) < SURVEY_MIN_GROUP for count in above):
        hidden = f"hidden: the rest of a unit above has fewer than {SURVEY_MIN_GROUP} answers"
        return SurveyResult(round_id, name, kind, len(rows), None, None, None, hidden)
    return SurveyResult(
        round_id,
        name,
        kind,
        len(rows),
        statistics.fmean(r[0] for r in rows),
        statistics.fmean(r[1] for r in rows),
        _nps([r[2] for r in rows]),
        satisfied=sum(1 for r in rows if r[0] >= SATISFIED) / len(rows),
    )
