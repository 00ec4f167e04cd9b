"""The maturity, transition-plan, ROI and survey pages through the ASGI app: evidence and
rows, N/A without data, access by role, exports, and the survey form's answers."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest

from tests.server.dashboard.seed import EVIL, SURVEY_ANSWERS, Seeded
from tests.server.dashboard.test_pages import client

pytestmark = pytest.mark.anyio


async def test_maturity_scores_four_dimensions_with_their_evidence(seeded: Seeded) -> None:
    async with client(seeded, "root") as c:
        page = (await c.get("/dashboard/maturity")).text
        evidence = (await c.get("/dashboard/maturity?format=json&table=evidence")).json()
        readiness = (await c.get("/dashboard/maturity?format=json&table=readiness")).json()
    for dimension in ("Technical", "Process", "Organisational", "Cultural"):
        assert f"{dimension} maturity" in page
    rows = {r["Signal"]: r for r in evidence["rows"]}
    assert rows["change_failure_rate"]["Score"] is not None
    assert rows["change_failure_rate"]["Rule"].startswith("<=")
    assert rows["survey_satisfaction"]["Value"] == pytest.approx(25 / 6)  # the closed round
    # governance signals (rules 2): the seed's 30 calls were let through, no refusal
    assert rows["policy_compliance"]["Value"] == 1 and rows["policy_compliance"]["Score"] == 5
    assert rows["registry_use"]["Value"].startswith("unknown: no run")
    assert (
        rows["test_coverage"]["Score"] == "unknown"
        and rows["test_coverage"]["Rule"] == "not scored"
    )
    assert page.count('class="datum"') >= 6  # scored signals drawn as bars
    # a signal's bar and its evidence row lead to its rows: a KPI's rows page, or its own
    assert 'href="/dashboard/kpis/change_failure_rate?period=last-90d"' in page
    assert 'href="/dashboard/maturity/units_with_lead?period=last-90d"' in page
    assert readiness["rows"] and {r["Kind"] for r in readiness["rows"]} == {"maturity", "kpi"}
    assert "Readiness for the medium stage" in page


async def test_a_dimension_without_data_is_na_not_a_guess(seeded: Seeded) -> None:
    async with client(seeded, "root") as c:
        page = (await c.get("/dashboard/maturity?unit=search")).text
    technical = page[page.index("Technical maturity") : page.index("Process maturity")]
    assert "N/A" in technical and "no signal of this dimension has data" in technical


async def test_a_signals_rows_are_read_back(seeded: Seeded) -> None:
    async with client(seeded, "root") as c:
        page = await c.get("/dashboard/maturity/units_with_lead")
        missing = await c.get("/dashboard/maturity/nope")
    assert page.status_code == 200
    assert "squads and tribes with a developer whose role is lead" in page.text
    assert page.text.count('<th scope="row">') >= 3  # checkout, payments, search ...
    assert missing.status_code == 404 and "units_with_lead" in missing.text


@pytest.mark.parametrize(
    ("who", "status"), [("alice", 200), ("lead", 200), ("root", 200), ("bob", 403)]
)
async def test_developer_figures_on_the_new_pages_follow_the_same_rule(
    seeded: Seeded, who: str, status: int
) -> None:
    async with client(seeded, who) as c:
        for path in ("/dashboard/maturity", "/dashboard/roi", "/dashboard/plan?target=medium"):
            answer = await c.get(f"{path}{'&' if '?' in path else '?'}unit=alice")
            assert answer.status_code == status, (path, answer.text[:300])


async def test_the_plan_shows_phases_exit_criteria_and_recorded_progress(seeded: Seeded) -> None:
    async with client(seeded, "root") as c:
        page = (await c.get("/dashboard/plan")).text
        phases = (await c.get("/dashboard/plan?format=json&table=phases")).json()["rows"]
        exits = (await c.get("/dashboard/plan?format=json&table=exit")).json()["rows"]
        progress = (await c.get("/dashboard/plan?format=json&table=progress")).json()["rows"]
        wrong = await c.get("/dashboard/plan?target=individual")
    assert "Transition plan of acme: small_team to medium" in page
    assert phases and all(p["Status"] in ("done", "open", "unknown") for p in phases)
    assert exits and all(e["Met"] in ("yes", "no", "unknown") for e in exits)
    assert len(progress) == 2  # the seed recorded two evaluations
    assert "Phases on the timeline" in page and page.count('class="datum ') >= len(phases)
    assert "Readiness at each recorded evaluation" in page
    assert re.search(r'href="/dashboard/(kpis|maturity)[^"]*"', page)
    assert wrong.status_code == 400 and "cannot plan" in wrong.text


async def test_roi_says_unknown_without_assumptions_and_computes_with_them(
    seeded: Seeded,
) -> None:
    async with client(seeded, "root") as c:
        bare = (await c.get("/dashboard/roi")).text
        given = await c.get("/dashboard/roi?cost_per_hour=100&effort_share=0.5")
        inputs = (
            await c.get(
                "/dashboard/roi?cost_per_hour=100&effort_share=0.5&format=json&table=inputs"
            )
        ).json()["rows"]
        times = (
            await c.get(
                "/dashboard/roi?cost_per_hour=100&effort_share=0.5&format=json&table=cycle-times"
            )
        ).json()["rows"]
        bad = await c.get("/dashboard/roi?effort_share=2")
    assert "Unknown: assumption not given" in bare
    assert given.status_code == 200
    kinds = {r["Input"]: r["Measured or assumed"] for r in inputs}
    assert kinds["AI cost"] == "measured" and kinds["effort share"].startswith("assumed")
    assert {r["Input"]: r["Value"] for r in inputs}["cost of a developer-hour"] == 100
    assert {t["Period"] for t in times} == {"baseline", "since adoption"}
    # the seed's changes all took 30 h: nothing saved, the AI cost lost: -100 %
    assert "-100%" in given.text and "95% interval" in given.text
    assert "Design documents" in given.text
    assert bad.status_code == 400


async def test_survey_results_only_for_groups_of_five(seeded: Seeded) -> None:
    async with client(seeded, "root") as c:
        page = (await c.get("/dashboard/surveys/2026-q3")).text
        rows = (await c.get("/dashboard/surveys/2026-q3?format=json&table=results")).json()
        rounds = (await c.get("/dashboard/surveys")).text
        unknown = await c.get("/dashboard/surveys/nope")
    by = {r["Group"]: r for r in rows["rows"]}
    mean = sum(a[0] for a in SURVEY_ANSWERS.values()) / len(SURVEY_ANSWERS)
    assert by["acme"]["Satisfaction (1-5)"] == pytest.approx(mean)
    assert by["checkout"]["Respondents"] == "fewer than 5"
    assert by["checkout"]["Satisfaction (1-5)"] == "too few answers"
    # five, but the rest of the organisation would be one
    assert by["retail"]["Satisfaction (1-5)"].startswith("hidden")
    assert by["retail"]["NPS"] == "hidden"
    assert "<form" not in page and "This round is closed" in page
    assert html.escape("Q4 survey <b>now</b>") in rounds and "<b>now</b>" not in rounds
    assert unknown.status_code == 404


async def test_the_survey_form_records_the_signed_in_developers_answer(fresh: Seeded) -> None:
    form = {"satisfaction": "4", "quality": "5", "recommend": "9"}
    path = "/dashboard/surveys/2026-q4/answer"
    async with client(fresh, "alice") as c:
        page = (await c.get("/dashboard/surveys/2026-q4")).text
        cross = await c.post(path, data=form, headers={"origin": "https://evil.example"})
        bad = await c.post(path, data={**form, "recommend": "11"})
        null = await c.post(path, data=form, headers={"origin": "null"})
        sent = await c.post(path, data=form, headers={"origin": "https://t"})  # TLS at a proxy
        again = await c.post(path, data=form)
        after = (await c.get(sent.headers["location"])).text
    async with client(fresh) as c:
        anonymous = await c.post(path, data=form)
    assert 'action="/dashboard/surveys/2026-q4/answer"' in page and 'name="recommend"' in page
    assert cross.status_code == 403 and null.status_code == 403
    assert bad.status_code == 400 and "recommend" in bad.text
    assert sent.status_code == 303 and "answered=1" in sent.headers["location"]
    assert again.status_code == 409
    assert anonymous.status_code == 401
    assert "Your answer is recorded" in after
    async with client(fresh, "root") as c:
        listed = (await c.get("/dashboard/surveys?format=json&table=rounds")).json()["rows"]
    assert {r["Round"]: r["Respondents"] for r in listed}["2026-q4"] == 1


async def test_html_in_unit_names_is_text_on_the_new_pages(seeded: Seeded) -> None:
    unit = quote(EVIL, safe="")
    async with client(seeded, "root") as c:
        pages = [
            (await c.get(path)).text
            for path in (
                f"/dashboard/maturity?unit={unit}",
                f"/dashboard/plan?unit={unit}&target=medium",
                f"/dashboard/roi?unit={unit}",
                "/dashboard/surveys/2026-q3",
            )
        ]
    for page in pages:
        assert html.escape(EVIL) in page and EVIL not in page
