"""Surveys: one anonymous answer per developer per round, results only for groups of five
(and never one a subtraction could single out); the CLI and the served form."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from orchestra.analytics import (
    AlreadyAnswered,
    InvalidAnswer,
    NotVisible,
    RoundClosed,
    UnknownRound,
    UnknownUnit,
    answer_survey,
    close_survey_round,
    list_survey_rounds,
    open_survey_round,
    principal_in,
    survey_results,
)
from orchestra.cli.app import app
from orchestra.config import OrganisationSection
from orchestra.org import build_org_tree, load_org, sync_org
from orchestra.store import Database, open_database
from orchestra.store.tables.insight2 import InsightSurveyAnswerRow
from tests.analytics.fixtures import served_app

PAYMENTS = [f"p{i}" for i in range(1, 7)]
SEARCH = ["s1", "s2", "s3"]
# p1..p5's answers: satisfaction mean 3.6, quality mean 3.0, NPS (3 promoters - 1
# detractor) / 5 = +40
GOLDEN = [(5, 4, 10), (4, 4, 9), (4, 3, 9), (3, 3, 7), (2, 1, 3)]


ORGANISATION = {
    "name": "acme",
    "units": [
        {"name": "retail", "kind": "division"},
        {"name": "checkout", "kind": "tribe", "parent": "retail"},
        {"name": "payments", "kind": "squad", "parent": "checkout"},
        {"name": "search", "kind": "squad", "parent": "retail"},
    ],
    "developers": [
        *({"name": n, "unit": "payments"} for n in PAYMENTS),
        *({"name": n, "unit": "search"} for n in SEARCH),
        {"name": "lead", "unit": "checkout", "role": "lead"},
        {"name": "root", "role": "admin"},
    ],
}


def _organisation(db: Database) -> None:
    sync_org(db, build_org_tree(OrganisationSection.model_validate(ORGANISATION)))


def _opened(database: Database) -> Database:
    _organisation(database)
    open_survey_round(database, principal_in(load_org(database), "lead"), "2026-q4", "Q4")
    return database


@pytest.fixture
def db(database: Database) -> Database:
    """SQLite, and PostgreSQL where configured (one answer each rests on the key)."""
    return _opened(database)


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Database]:
    """SQLite only, for what does not depend on the backend."""
    database = open_database(f"sqlite:///{tmp_path / 'survey.db'}")
    yield _opened(database)
    database.dispose()


def _answer(db: Database, who: str, scores: tuple[int, int, int] = (4, 4, 9)) -> None:
    s, q, r = scores
    answer_survey(db, who, "2026-q4", satisfaction=s, quality=q, recommend=r)


def _shown(db: Database, unit: str | None = None) -> dict[str, object]:
    return survey_results(db, "2026-q4", unit=unit).to_dict()


def test_golden_five_answers_are_shown_four_are_too_few(db: Database) -> None:
    for who, scores in zip(PAYMENTS[:4], GOLDEN, strict=False):
        _answer(db, who, scores)
    assert _shown(db, "payments") == {
        "round": "2026-q4",
        "unit": "payments",
        "kind": "squad",
        "respondents": "fewer than 5",
        "result": "too few answers",
    }
    _answer(db, PAYMENTS[4], GOLDEN[4])
    for unit in ("payments", "checkout", "retail", None):
        shown = _shown(db, unit)
        assert shown["respondents"] == 5, unit
        assert shown["satisfaction"] == pytest.approx(3.6)
        assert shown["quality"] == pytest.approx(3.0)
        assert shown["nps"] == pytest.approx(40.0)
        assert shown["satisfied"] == pytest.approx(0.6)  # 5, 4, 4 of 5, 4, 4, 3, 2
    assert _shown(db, "search")["result"] == "too few answers"


def test_a_group_a_subtraction_would_single_out_is_hidden(db: Database) -> None:
    for who in PAYMENTS[:5] + SEARCH:
        _answer(db, who)
    # retail (8) - payments (5) = search's 3: payments and checkout are hidden too
    for unit in ("payments", "checkout"):
        shown = _shown(db, unit)
        assert shown["respondents"] == 5
        assert str(shown["result"]).startswith("hidden: the rest of a unit above")
        assert "satisfaction" not in shown
    assert _shown(db, "retail")["respondents"] == 8
    assert _shown(db)["respondents"] == 8
    assert _shown(db, "search")["result"] == "too few answers"


def test_one_answer_per_developer_and_none_names_its_developer(db: Database) -> None:
    _answer(db, "p1")
    with pytest.raises(AlreadyAnswered):
        _answer(db, "p1", (1, 1, 0))
    columns = {c["name"] for c in inspect(db.engine).get_columns("insight_survey_answers")}
    assert columns == {
        "id",
        "round_id",
        "division",
        "tribe",
        "squad",
        "satisfaction",
        "quality",
        "recommend",
    }
    with db.session() as session:
        (row,) = session.scalars(select(InsightSurveyAnswerRow))
        assert (row.squad, row.tribe, row.division) == ("payments", "checkout", "retail")
        assert (row.satisfaction, row.quality, row.recommend) == (4, 4, 9)  # the first answer


def test_answers_out_of_range_are_refused(lite: Database) -> None:
    for scores in [(0, 3, 5), (3, 6, 5), (3, 3, 11), (6, 3, 5), (3, 0, 5), (3, 3, -1)]:
        with pytest.raises(InvalidAnswer):
            _answer(lite, "p1", scores)
    _answer(lite, "p1", (1, 1, 0))  # the bounds themselves are answers
    _answer(lite, "p2", (5, 5, 10))


def test_rounds_open_and_close_by_leads_and_admins_only(lite: Database) -> None:
    db = lite
    tree = load_org(db)
    with pytest.raises(NotVisible):
        open_survey_round(db, principal_in(tree, "p1"), "2027-q1", "Q1")
    with pytest.raises(NotVisible):
        close_survey_round(db, principal_in(tree, "p1"), "2026-q4")
    with pytest.raises(NotVisible):
        _answer(db, "stranger")
    close_survey_round(db, principal_in(tree, "root"), "2026-q4")
    with pytest.raises(RoundClosed):
        _answer(db, "p1")
    with pytest.raises(UnknownUnit):
        survey_results(db, "2026-q4", unit="p1")  # a developer is never a group


def test_an_unknown_round_names_its_close_matches_and_closing_answers_the_round(
    lite: Database,
) -> None:
    root = principal_in(load_org(lite), "root")
    with pytest.raises(UnknownRound) as unknown:
        close_survey_round(lite, root, "2026-q3")
    assert unknown.value.hint == "did you mean 2026-q4?"
    closed = close_survey_round(lite, root, "2026-q4")
    assert closed.id == "2026-q4" and closed.closed_at is not None
    [listed] = [r for r in list_survey_rounds(lite) if r.id == closed.id]
    assert closed.respondents == listed.respondents
    again = close_survey_round(lite, root, "2026-q4")  # keeps its first closing time
    assert again.closed_at == closed.closed_at and again.closed_at.tzinfo is not None


def test_cli_answer_and_results(
    lite: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # the CLI answers as the configured developer, never as someone named on the line
    (tmp_path / "orchestra.yaml").write_text(json.dumps({"organisation": ORGANISATION}))
    url = str(lite.engine.url)
    runner = CliRunner()

    def answer(who: str, s: int, q: int, r: int) -> Result:
        monkeypatch.setenv("ORCHESTRA_DEVELOPER", who)
        args = ["survey", "answer", "2026-q4", "--satisfaction", str(s), "--quality", str(q)]
        return runner.invoke(app, [*args, "--recommend", str(r), "--database", url])

    for who, scores in zip(PAYMENTS, GOLDEN, strict=False):
        done = answer(who, *scores)
        assert done.exit_code == 0, done.output
    again = answer("p1", 1, 1, 1)
    assert again.exit_code == 2 and "already answered" in again.output
    stranger = answer("mallory", 1, 1, 1)
    assert stranger.exit_code == 2 and "not in organisation.developers" in stranger.output
    monkeypatch.setenv("ORCHESTRA_DEVELOPER", "p6")
    refused = runner.invoke(app, ["survey", "close", "2026-q4", "--database", url])
    assert refused.exit_code == 2 and "admins and leads" in refused.output
    results = ["survey", "results", "2026-q4", "--database", url]
    out = runner.invoke(app, [*results, "--unit", "payments", "--json"])
    assert json.loads(out.output)["nps"] == pytest.approx(40.0)
    text = runner.invoke(app, [*results, "--unit", "search"])
    assert "squad search: too few answers" in text.output
    listed = runner.invoke(app, ["survey", "list", "--database", url, "--json"])
    assert json.loads(listed.output)[0]["respondents"] == 5


def test_served_form_posts_an_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def seed(db: Database) -> None:
        _organisation(db)
        open_survey_round(db, principal_in(load_org(db), "root"), "q4", "<b>Q4</b>")

    with served_app(tmp_path, monkeypatch, seed, ["p1"]) as (served, keys):
        p1 = keys["p1"]

        async def scenario() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=served)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                form = {"satisfaction": "4", "quality": "3", "recommend": "9"}
                answers = "/api/insight/surveys/q4/answers"
                return [
                    await client.get("/survey/q4"),
                    await client.get("/survey/nope"),
                    await client.post(answers, data={**form, "key": "x"}),
                    await client.post(answers, data={**form, "key": p1}),
                    await client.post(answers, json=form, headers={"x-api-key": p1}),
                    await client.get("/api/insight/surveys/q4/results", headers={"x-api-key": p1}),
                    await client.get("/api/insight/surveys/q4/results"),
                    await client.post(
                        answers, json={**form, "quality": "9"}, headers={"x-api-key": p1}
                    ),
                ]

        page, missing, bad_key, posted, twice, results, anonymous, bad = asyncio.run(scenario())
    assert page.status_code == 200
    assert "&lt;b&gt;Q4&lt;/b&gt;" in page.text and "<b>Q4</b>" not in page.text
    assert 'action="/api/insight/surveys/q4/answers"' in page.text
    assert missing.status_code == 404
    assert bad_key.status_code == 401 and "<form" in bad_key.text
    assert posted.status_code == 201 and "Thank you" in posted.text
    assert twice.status_code == 409 and twice.json()["hint"]
    assert results.json()["result"] == "too few answers"
    assert anonymous.status_code == 401
    assert bad.status_code == 400 and "quality" in bad.json()["error"]
