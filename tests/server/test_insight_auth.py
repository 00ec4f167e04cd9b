"""Who may call ``/api/insight/...``: the credentials the dashboard and the REST API take (the
web login's session cookie, an OpenID Connect bearer token, a gateway key), with the same
visibility rules — a developer's own figures for that developer, leads of their unit or a
unit above it, and admins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from orchestra.config import OrchestraConfig
from orchestra.gateway import GatewayApp
from orchestra.identity import COOKIE
from orchestra.org import build_org_tree, sync_org
from orchestra.server import build_app
from orchestra.server.insight import kpi_routes
from orchestra.server.insight_more import insight_more_routes
from orchestra.store import Database
from tests.analytics.fixtures import budget
from tests.identity.conftest import provider  # noqa: F401 (the fixture)
from tests.identity.provider import CLIENT_SECRET, GROUPS, Provider, token_for
from tests.server.api.conftest import ORG

pytestmark = pytest.mark.anyio

KPI = "/api/insight/kpis?period=2026-11&kpi=cycle_time"


class Served:
    """The app with insight's routes, and a gateway key per developer."""

    def __init__(self, app: GatewayApp, keys: dict[str, str], database: Database) -> None:
        self.app = app
        self.keys = keys
        self.database = database

    @property
    def api(self) -> Any:
        return self.app.fallback.state.api  # type: ignore[union-attr]

    def session(self, developer: str) -> str:
        """The cookie the web login sets for ``developer``."""
        cookie, _ = self.api.sessions.issue(
            self.api.directory.developer(developer, via="session"), token_expiry=None
        )
        return str(cookie)

    async def get(self, path: str, **headers: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.get(path, headers=headers)


def _served(tmp_path: Path, **identity: Any) -> Iterator[Served]:
    config = OrchestraConfig.model_validate({"organisation": ORG, "identity": identity})
    config_path = tmp_path / "orchestra.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True)))
    opened: list[Database] = []
    routes = kpi_routes(config, lambda: opened[0])
    routes += insight_more_routes(config, lambda: opened[0])
    app = build_app(
        config,
        database_url=f"sqlite:///{tmp_path / 'orchestra.db'}",
        config_path=config_path,
        extra_routes=routes,
    )
    accounting = app.gateway.accountant.accounting  # type: ignore[attr-defined]
    opened.append(accounting.store.db)
    sync_org(accounting.store.db, build_org_tree(config.organisation))
    keys = {
        name: accounting.keys.create(name, None, admin=name == "root", actor="test")[0]
        for name in ("root", "lena", "dev", "vic")
    }
    try:
        yield Served(app, keys, accounting.store.db)
    finally:
        accounting.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from _served(tmp_path)


async def test_no_credential_is_401_on_every_insight_route(served: Served) -> None:
    for path in (
        KPI,
        "/api/insight/maturity",
        "/api/insight/plan?target=medium",
        "/api/insight/roi",
        "/api/insight/surveys",
        "/api/insight/budgets",
    ):
        answer = await served.get(path)
        assert answer.status_code == 401, path
        assert answer.json()["hint"]
    assert (await served.get(KPI, **{"x-api-key": "orc_not-a-key"})).status_code == 401


async def test_gateway_keys_self_lead_and_admin_see_a_developers_figures(served: Served) -> None:
    def key(who: str) -> dict[str, str]:
        return {"x-api-key": served.keys[who]}

    assert (await served.get(f"{KPI}&unit=dev", **key("dev"))).status_code == 200
    assert (await served.get(f"{KPI}&unit=dev", **key("lena"))).status_code == 200  # her squad
    assert (await served.get(f"{KPI}&unit=dev", **key("root"))).status_code == 200
    other = await served.get(f"{KPI}&unit=dev", **key("vic"))
    assert other.status_code == 403 and "own figures" in other.json()["error"]
    assert (await served.get(f"{KPI}&unit=vic", **key("lena"))).status_code == 403  # squad-b
    assert (await served.get(f"{KPI}&unit=squad-a", **key("vic"))).status_code == 200
    bearer = {"authorization": f"Bearer {served.keys['lena']}"}  # a key as a bearer
    assert (await served.get(f"{KPI}&unit=dev", **bearer)).status_code == 200


async def test_the_web_login_session_is_accepted_with_the_same_rules(served: Served) -> None:
    def cookie(who: str) -> dict[str, str]:
        return {"cookie": f"{COOKIE}={served.session(who)}"}

    own = await served.get(f"{KPI}&unit=dev", **cookie("dev"))
    assert own.status_code == 200 and own.json()["unit"]["name"] == "dev"
    assert (await served.get(f"{KPI}&unit=dev", **cookie("lena"))).status_code == 200
    assert (await served.get(f"{KPI}&unit=dev", **cookie("vic"))).status_code == 403
    maturity = "/api/insight/maturity?unit=dev"
    assert (await served.get(maturity, **cookie("root"))).status_code == 200
    assert (await served.get(maturity, **cookie("vic"))).status_code == 403
    assert (await served.get("/api/insight/surveys", **cookie("vic"))).status_code == 200


async def test_budget_burn_follows_the_same_rules(served: Served) -> None:
    budget(served.database, "dev-month", "developer", "dev", 50)
    path = "/api/insight/budgets?unit=dev"
    own = await served.get(path, **{"x-api-key": served.keys["dev"]})
    assert own.status_code == 200, own.text
    (burn,) = own.json()["budgets"]
    assert (burn["budget"], burn["cap_usd"], burn["spent_usd"]) == ("dev-month", 50.0, 0.0)
    assert burn["rate_usd_per_day"] is None and "fewer than 3 full days" in burn["why_unknown"]
    lead = await served.get(path, cookie=f"{COOKIE}={served.session('lena')}")
    assert lead.status_code == 200
    assert (await served.get(path, **{"x-api-key": served.keys["vic"]})).status_code == 403
    squad = await served.get(
        "/api/insight/budgets?unit=squad-a", **{"x-api-key": served.keys["vic"]}
    )
    assert squad.status_code == 200 and squad.json()["budgets"] == []


async def test_a_survey_answer_never_rides_on_the_session_cookie(served: Served) -> None:
    transport = httpx.ASGITransport(app=served.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        answer = await c.post(
            "/api/insight/surveys/q4/answers",
            json={"satisfaction": 4, "quality": 4, "recommend": 9},
            headers={"cookie": f"{COOKIE}={served.session('dev')}"},
        )
    assert answer.status_code == 401


@pytest.fixture
def sso(
    provider: Provider,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Served]:
    monkeypatch.setenv("TEST_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    yield from _served(tmp_path, oidc=provider.oidc_settings(), groups=GROUPS)


async def test_an_openid_connect_bearer_token_is_accepted_with_its_groups_roles(
    sso: Served,
    provider: Provider,  # noqa: F811 (the imported fixture)
) -> None:
    def bearer(account: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token_for(provider, account)['access_token']}"}

    # lars: lead of the payments tribe (squad-a is below it); dora: a developer of squad-a
    assert (await sso.get(f"{KPI}&unit=dev", **bearer("lars"))).status_code == 200
    assert (await sso.get(f"{KPI}&unit=dev", **bearer("alice"))).status_code == 200  # admin
    assert (await sso.get(f"{KPI}&unit=dev", **bearer("dora"))).status_code == 403
    assert (await sso.get(f"{KPI}&unit=squad-a", **bearer("dora"))).status_code == 200
    assert (await sso.get(f"{KPI}&unit=squad-a", **bearer("nemo"))).status_code == 403  # no role
