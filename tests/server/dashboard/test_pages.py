"""The dashboard's pages through the ASGI app: access, escaping, drill-down, exports."""

from __future__ import annotations

import csv
import html
import io
import re
from urllib.parse import quote

import httpx
import pytest

from tests.server.dashboard.seed import EVIL, EVIL_DEVELOPER, Seeded

pytestmark = pytest.mark.anyio

PAGES = [
    "/dashboard/",
    "/dashboard/kpis",
    "/dashboard/units/checkout",
    "/dashboard/units/alice",
    "/dashboard/kpis/change_failure_rate?period=last-90d",
    "/dashboard/spend",
    "/dashboard/alerts",
    "/dashboard/registry",
    "/dashboard/policies",
    "/dashboard/maturity",
    "/dashboard/maturity/run_pass_rate",
    "/dashboard/plan",
    "/dashboard/roi",
    "/dashboard/surveys",
    "/dashboard/surveys/2026-q3",
    "/dashboard/surveys/2026-q4",
]


def client(seeded: Seeded, who: str | None = None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {seeded.keys[who]}"} if who else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=seeded.app), base_url="http://t", headers=headers
    )


async def test_every_page_renders_for_an_admin_with_landmarks_and_a_strict_csp(
    seeded: Seeded,
) -> None:
    async with client(seeded, "root") as c:
        for path in PAGES:
            page = await c.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            assert page.headers["content-type"].startswith("text/html")
            assert "script-src 'self'" in page.headers["content-security-policy"]
            for landmark in ("<main", "<nav", "<header", "<h1"):
                assert landmark in page.text, (path, landmark)
            assert "<script>" not in page.text.replace("<script src=", "")


async def test_names_holding_html_are_text_not_markup(seeded: Seeded) -> None:
    async with client(seeded, "root") as c:
        overview = (await c.get("/dashboard/")).text
        unit = (await c.get(f"/dashboard/units/{quote(EVIL, safe='')}")).text
        spend = (await c.get("/dashboard/spend?period=all")).text
    assert html.escape(EVIL) in overview and EVIL not in overview
    assert unit.count(html.escape(EVIL)) >= 2 and EVIL not in unit  # the title and the heading
    assert html.escape(EVIL_DEVELOPER) in spend and EVIL_DEVELOPER not in spend


async def test_anonymous_callers_get_a_401_page_and_bad_keys_too(seeded: Seeded) -> None:
    async with client(seeded) as c:
        anonymous = await c.get("/dashboard/")
        forged = await c.get("/dashboard/", headers={"authorization": "Bearer sk-not-a-key"})
    assert anonymous.status_code == 401 and "authenticated caller" in anonymous.text
    assert forged.status_code == 401


@pytest.mark.parametrize(
    ("who", "status"), [("alice", 200), ("lead", 200), ("root", 200), ("bob", 403)]
)
async def test_a_developers_figures_are_theirs_their_leads_and_admins(
    seeded: Seeded, who: str, status: int
) -> None:
    async with client(seeded, who) as c:
        page = await c.get("/dashboard/units/alice")
        rows = await c.get("/dashboard/kpis/velocity?unit=alice")
    assert page.status_code == status, page.text[:300]
    assert rows.status_code == status
    if status == 403:
        assert "may not see" in page.text and "cycle_time" not in page.text


async def test_kpi_charts_draw_a_bar_per_known_week_linking_to_its_rows(seeded: Seeded) -> None:
    async with client(seeded, "root") as c:
        page = (await c.get("/dashboard/kpis?weeks=4")).text
        assert (await c.get("/dashboard/kpis?weeks=99")).status_code == 400
        bars = re.findall(
            r'<a href="(/dashboard/kpis/deployment_frequency\?period=[\d-]+\.\.[\d-]+)"', page
        )
        assert len(bars) == 4  # the seed deploys every week
        rows = await c.get(html.unescape(bars[-1]))
    assert page.count('class="datum"') >= 4 * 3
    assert 'role="img"' in page and "<desc>" in page
    assert "Formula" in page and "Unknown when" in page
    assert rows.status_code == 200 and "Deployment rows" in rows.text
    assert rows.text.count('<th scope="row">github:acme/shop:') == 2  # two deployments a week


async def test_every_table_exports_as_csv_and_json(seeded: Seeded) -> None:
    async with client(seeded, "root") as c:
        data = (await c.get("/dashboard/spend?period=all&format=json&table=by-developer")).json()
        text = (await c.get("/dashboard/spend?period=all&format=csv&table=by-developer")).text
        missing = await c.get("/dashboard/spend?period=all&format=csv&table=nope")
        page = (await c.get("/dashboard/alerts")).text
    by_dev = {r["Developer"]: r for r in data["rows"]}
    assert set(by_dev) == {"alice", "carol", EVIL_DEVELOPER}
    assert by_dev["alice"]["Requests"] == 10
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["Developer"] for r in parsed] == [r["Developer"] for r in data["rows"]]
    assert missing.status_code == 404 and "by-day" in missing.json()["hint"]
    assert "format=csv&amp;table=alerts" in page and "format=json&amp;table=alerts" in page


async def test_spend_shows_others_their_own_calls_only(seeded: Seeded) -> None:
    async with client(seeded, "alice") as c:
        data = (await c.get("/dashboard/spend?period=all&format=json&table=by-developer")).json()
    assert [r["Developer"] for r in data["rows"]] == ["alice"]


async def test_alert_buttons_show_for_leads_and_the_api_acts_on_them(fresh: Seeded) -> None:
    first, second = fresh.alerts
    async with client(fresh, "alice") as c:
        page = (await c.get("/dashboard/alerts")).text
        refused = await c.post(f"/api/v1/alerts/{first}/acknowledge", json={})
    assert "alert-action" not in page
    assert refused.status_code == 403
    async with client(fresh, "lead") as c:
        page = (await c.get("/dashboard/alerts")).text
        assert page.count('data-action="acknowledge"') == 2
        no_body = await c.post(f"/api/v1/alerts/{first}/acknowledge")
        acked = await c.post(f"/api/v1/alerts/{first}/acknowledge", json={"note": "on it"})
        resolved = await c.post(f"/api/v1/alerts/{second}/resolve", json={})
        again = await c.post(f"/api/v1/alerts/{second}/resolve", json={})
        unknown = await c.post("/api/v1/alerts/nope/resolve", json={})
        listed = (await c.get("/api/v1/alerts?state=acknowledged")).json()
    assert no_body.status_code == 400
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "developer:lead"
    assert resolved.json()["state"] == "resolved"
    assert again.status_code == 400 and unknown.status_code == 404
    assert [a["id"] for a in listed["alerts"]] == [first]
    audit = fresh.app.gateway.accountant.accounting.audit  # type: ignore[attr-defined]
    actions = [(e.actor, e.action, e.target) for e in reversed(audit.list(action="alert."))]
    assert actions == [
        ("developer:lead", "alert.acknowledged", first),
        ("developer:lead", "alert.resolved", second),
    ]


async def test_kpis_are_prometheus_gauges_per_unit_without_developer_figures(
    seeded: Seeded,
) -> None:
    async with client(seeded, "bob") as c:
        text = (await c.get("/metrics/insight?period=last-90d")).text
    async with client(seeded) as c:
        anonymous = await c.get("/metrics/insight")
    assert anonymous.status_code == 401
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    velocity = [line for line in lines if line.startswith('orchestra_insight_kpi{kpi="velocity"')]
    known = [
        line for line in lines if line.startswith('orchestra_insight_kpi_known{kpi="velocity"')
    ]
    units = {re.search(r'unit="((?:[^"\\]|\\.)*)"', line)[1] for line in known}  # type: ignore[index]
    assert units == {"acme", "retail", "checkout", "payments", "search", EVIL}
    assert len(velocity) == 4  # search and the other squad merged nothing: unknown
    assert not any('unit="alice"' in line for line in lines)
    org = next(line for line in velocity if 'unit="acme"' in line)
    assert float(org.rsplit(" ", 1)[1]) > 0
    unknown = [
        line
        for line in lines
        if line.startswith("orchestra_insight_kpi_known") and line.endswith(" 0")
    ]
    for line in unknown:  # an unknown figure has no gauge, not a 0
        labels = line[len("orchestra_insight_kpi_known") : line.rindex(" ")]
        assert f"orchestra_insight_kpi{labels} " not in text
    assert 'orchestra_insight_alerts{state="open",severity="critical"} 1' in lines


async def test_bad_input_gets_a_clear_4xx_page(seeded: Seeded) -> None:
    async with client(seeded, "root") as c:
        kpi = await c.get("/dashboard/kpis/nope")
        unit = await c.get("/dashboard/units/nobody")
        period = await c.get("/dashboard/?period=someday")
    assert kpi.status_code == 404 and "text/html" in kpi.headers["content-type"]
    assert unit.status_code == 404 and "nobody" in unit.text
    assert period.status_code == 400 and "2026-Q4" in period.text  # the hint says how
