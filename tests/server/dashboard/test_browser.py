"""The dashboard in headless Chromium (Debian's ``chromium``, driven by Playwright) against
a real loopback server over a seeded database: pages render, charts draw, drill-down
reaches the rows, alert buttons work, nothing logs a console error, HTML in names stays
text. One browser for all of them.

Locally, without ``/usr/bin/chromium`` the tests skip saying so; in CI (``CI`` or
``ORCHESTRA_REQUIRE_BROWSER`` set — ``.ci/run`` installs chromium) they fail instead.
``ORCHESTRA_SCREENSHOTS=docs/img`` writes the docs' screenshots.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestra.identity import COOKIE
from tests.gateway.helpers import ServerThread
from tests.server.dashboard.experiment_seed import EVIL_ARM, EVIL_DESCRIPTION
from tests.server.dashboard.experiment_seed import NAME as EXPERIMENT
from tests.server.dashboard.seed import EVIL, Seeded, seeded_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") or os.environ.get("ORCHESTRA_REQUIRE_BROWSER"):
        pytest.fail(f"{reason}: the browser tests are required here (CI installs chromium)")
    pytest.skip(f"{reason} (apt-get install -y chromium; pip install playwright)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser for the module's tests. Not session-wide: Playwright's sync API holds an
    event loop on the main thread while it runs, which later async tests cannot share."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Seeded, str]]:
    for seeded in seeded_app(tmp_path_factory.mktemp("browser")):
        server = ServerThread(seeded.app).start()
        try:
            yield seeded, server.base_url
        finally:
            server.stop()


class Tab:
    """A page signed in as someone, collecting console errors and failed requests."""

    def __init__(
        self, browser: Any, base: str, key: str | None = None, session: str | None = None
    ) -> None:
        self.context = browser.new_context(
            base_url=base,
            extra_http_headers={"authorization": f"Bearer {key}"} if key else {},
            viewport={"width": 1100, "height": 900},
        )
        if session is not None:
            self.context.add_cookies([{"name": COOKIE, "value": session, "url": base}])
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on(
            "response", lambda r: r.status >= 400 and self.errors.append(f"{r.status} {r.url}")
        )

    def open(self, path: str) -> Any:
        answer = self.page.goto(path)
        assert answer is not None and answer.status == 200, (path, answer and answer.status)
        return self.page

    def shot(self, name: str) -> None:
        folder = os.environ.get("ORCHESTRA_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(folder) / f"dashboard-{name}.png"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def admin_tab(browser: Any, served: tuple[Seeded, str]) -> Iterator[Tab]:
    seeded, base = served
    tab = Tab(browser, base, seeded.keys["root"])
    yield tab
    tab.close()
    assert tab.errors == []


def test_pages_render_and_charts_draw_without_console_errors(admin_tab: Tab) -> None:
    for path, name in (
        ("/dashboard/", "overview"),
        ("/dashboard/spend?period=all", "spend"),
        ("/dashboard/registry", None),
        ("/dashboard/policies", None),
        ("/dashboard/kpis?weeks=6", "kpis"),
    ):
        page = admin_tab.open(path)
        assert page.locator("main h1").count() == 1
        assert page.locator("nav a[aria-current=page]").count() == 1
        if name:
            admin_tab.shot(name)
    charts = page.locator("svg.chart[role=img]")
    assert charts.count() >= 10
    drawn = page.evaluate(
        "() => [...document.querySelectorAll('svg.chart')].map(s =>"
        " [...s.querySelectorAll('.datum')].filter(r => r.getBBox().height > 0).length)"
    )
    assert sum(drawn) >= 6 * 3  # deployments, velocity, lead time ... every week of the seed
    assert page.evaluate("() => window.__pwned") is None


def test_drill_down_from_the_overview_to_a_figures_rows(admin_tab: Tab) -> None:
    page = admin_tab.open("/dashboard/")
    page.get_by_role("link", name="checkout", exact=True).first.click()
    page.wait_for_url("**/dashboard/units/checkout")
    assert page.locator("h1").inner_text() == "Tribe checkout"
    page.get_by_role("link", name="alice", exact=True).click()
    page.wait_for_url("**/dashboard/units/alice")
    admin_tab.shot("unit")
    page.locator("#kpis a", has_text="Velocity").first.click()
    page.wait_for_url("**/dashboard/kpis/velocity*")
    rows = page.locator("#rows-change tbody tr")
    assert rows.count() >= 1
    assert "alice" in page.locator("#rows-change").inner_text()
    admin_tab.shot("rows")
    # and from a chart's bar: the week's rows
    page = admin_tab.open("/dashboard/kpis?weeks=4")
    page.locator("svg.chart a").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/kpis/*period=*..*")
    assert page.locator("table[id^=rows-] tbody tr").count() >= 1


def test_html_in_names_is_shown_as_text(admin_tab: Tab) -> None:
    page = admin_tab.open("/dashboard/")
    cell = page.get_by_role("link", name=EVIL, exact=True)
    assert cell.count() == 1
    cell.click()
    page.wait_for_url("**/dashboard/units/**")
    assert EVIL in page.locator("h1").inner_text()
    assert page.locator("main script").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    page = admin_tab.open("/dashboard/spend?period=all")
    assert page.locator("main img").count() == 0
    assert page.evaluate("() => window.__pwned") is None


def _session_of(seeded: Seeded, developer: str) -> str:
    """The cookie the web login (SSO) would set for ``developer``."""
    api = seeded.app.fallback.state.api  # type: ignore[union-attr]
    cookie, _ = api.sessions.issue(
        api.directory.developer(developer, via="session"), token_expiry=None
    )
    return str(cookie)


def test_a_lead_signed_in_by_sso_acknowledges_and_resolves_alerts_with_the_buttons(
    browser: Any, served: tuple[Seeded, str]
) -> None:
    seeded, base = served
    tab = Tab(browser, base, session=_session_of(seeded, "lead"))
    try:
        page = tab.open("/dashboard/alerts")
        tab.shot("alerts")
        first = page.locator("#alerts tbody tr").nth(0)
        first.get_by_role("button", name="Acknowledge").click()
        status = page.locator("#status")
        status.filter(has_text="acknowledged").wait_for()
        assert first.locator("td").nth(2).inner_text() == "acknowledged"
        second = page.locator("#alerts tbody tr").nth(1)
        second.get_by_role("button", name="Resolve").click()
        status.filter(has_text="resolved").wait_for()
        page = tab.open("/dashboard/alerts")
        states = page.locator("#alerts tbody tr td:nth-child(4)").all_inner_texts()
        assert sorted(states) == ["acknowledged", "resolved"]
    finally:
        tab.close()
    assert tab.errors == []


def test_maturity_plan_roi_and_survey_pages_render_and_draw(admin_tab: Tab) -> None:
    for path, name, least in (
        ("/dashboard/maturity", "maturity", 6),
        ("/dashboard/plan", "plan", 3),
        ("/dashboard/roi?cost_per_hour=100&effort_share=0.5", "roi", 2),
        ("/dashboard/surveys/2026-q3", "survey", 1),
    ):
        page = admin_tab.open(path)
        assert page.locator("main h1").count() == 1
        assert page.locator("nav a[aria-current=page]").count() == 1
        drawn = page.evaluate(
            "() => [...document.querySelectorAll('svg.chart .datum')]"
            ".filter(r => r.getBBox().height > 0 && r.getBBox().width > 0).length"
        )
        assert drawn >= least, (path, drawn)
        admin_tab.shot(name)
    assert page.evaluate("() => window.__pwned") is None


def test_drill_down_from_a_maturity_score_to_its_rows(admin_tab: Tab) -> None:
    page = admin_tab.open("/dashboard/maturity")
    page.locator("#evidence a", has_text="units_with_lead").first.click()
    page.wait_for_url("**/dashboard/maturity/units_with_lead*")
    assert "squads and tribes" in page.locator("main").inner_text()
    assert page.locator("table[id^=rows-] tbody tr").count() >= 3
    # a KPI signal's bar leads to the KPI's rows, with the keyboard
    page = admin_tab.open("/dashboard/maturity")
    page.locator('svg.chart a[href*="/kpis/change_failure_rate"]').first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/dashboard/kpis/change_failure_rate*")
    assert page.locator("#rows-deployment tbody tr").count() >= 1
    # and from the plan's exit criteria
    page = admin_tab.open("/dashboard/plan")
    page.locator("#exit tbody a").first.click()
    page.wait_for_url("**/dashboard/{kpis,maturity}**")
    assert page.locator("main h1").count() == 1


def test_a_developer_answers_the_survey_with_the_form(
    browser: Any, served: tuple[Seeded, str]
) -> None:
    seeded, base = served
    tab = Tab(browser, base, seeded.keys["alice"])
    try:
        page = tab.open("/dashboard/surveys/2026-q4")
        assert "<b>" in page.locator("h1").inner_text()  # the title's HTML is text
        assert page.locator("main b").count() == 0
        tab.shot("survey-form")
        for name, value in (("satisfaction", "4"), ("quality", "5"), ("recommend", "9")):
            page.locator(f"input[name={name}][value='{value}']").check()
        page.get_by_role("button", name="Send my answer").click()
        page.wait_for_url("**/dashboard/surveys/2026-q4?answered=1")
        assert "Your answer is recorded" in page.locator("main").inner_text()
        rows = page.locator("#results tbody tr").all_inner_texts()
        assert all("too few answers" in r for r in rows)  # one answer: no group shown
    finally:
        tab.close()
    assert tab.errors == []


def test_an_experiment_renders_its_interval_chart_and_escapes_html(admin_tab: Tab) -> None:
    page = admin_tab.open("/dashboard/experiments")
    page.get_by_role("link", name=EXPERIMENT, exact=True).click()
    page.wait_for_url(f"**/dashboard/experiments/{EXPERIMENT}")
    assert page.locator("main h1").inner_text() == f"Experiment {EXPERIMENT}"
    chart = page.locator("svg.interval-chart")
    assert chart.count() == 1
    widths = page.evaluate(
        "() => [...document.querySelectorAll('svg.interval-chart line.interval')]"
        ".map(l => l.getBBox().width)"
    )
    assert len(widths) == 6 and max(widths) > 50  # intervals drawn, not collapsed
    assert page.locator("svg.interval-chart circle.datum").count() == 6
    admin_tab.shot("experiment")
    # HTML in an arm's description and in a results line's arm name stays text
    assert page.get_by_text(EVIL_DESCRIPTION).count() == 1
    assert page.get_by_role("cell", name=EVIL_ARM, exact=True).count() == 1
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    # drill-down: an arm's row leads to its runs only
    page.get_by_role("link", name="hybrid", exact=True).click()
    page.wait_for_url("**?arm=hybrid#t-runs")
    arms = page.locator("#runs tbody tr td:nth-child(2)").all_inner_texts()
    assert arms == ["hybrid"] * 6
