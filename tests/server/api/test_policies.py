"""The API's checks go through the Cedar policies too: a refusal by a policy answers 403
naming the policy, and is in the audit log with its policy id and the caller as actor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.api.conftest import Api, api_config, make_api

pytestmark = pytest.mark.anyio

FORBID = """
@id("payments-budgets-frozen")
forbid(principal, action == Action::"change_budget", resource in Unit::"payments");
"""


@pytest.fixture
def frozen(tmp_path: Path) -> Iterator[Api]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "freeze.cedar").write_text(FORBID)
    config = api_config()
    config = config.model_copy(
        # Relative: under orchestra.yaml's folder (tmp_path), for the API and the gateway.
        update={"policies": config.policies.model_copy(update={"folder": "policies"})}
    )
    yield from make_api(tmp_path, config)


async def test_a_policy_refusal_is_403_and_audited_with_its_id(frozen: Api) -> None:
    budget = {"scope": "team", "subject": "squad-a", "cap_usd": "5"}
    async with frozen.client("lena") as lead:  # the role table lets a lead of squad-a
        refused = await lead.put("/api/v1/budgets/a", json=budget)
    assert refused.status_code == 403, refused.text
    assert "payments-budgets-frozen" in refused.json()["error"]["message"]
    entry = frozen.accounting.audit.list(action="policy.deny")[0]
    assert entry.actor == "developer:lena"
    assert entry.details["policy_ids"] == ["payments-budgets-frozen"]
    async with frozen.client("root") as admin:  # forbid wins over every permit
        also = await admin.put("/api/v1/budgets/a", json=budget)
        elsewhere = await admin.put(
            "/api/v1/budgets/o", json={"scope": "org", "subject": "*", "cap_usd": "5"}
        )
    assert also.status_code == 403
    assert elsewhere.status_code == 200, elsewhere.text


async def test_the_policies_can_be_read_and_checked(frozen: Api) -> None:
    async with frozen.client("dev") as dev:
        listed = await dev.get("/api/v1/policies")
        check = {"action": "change_budget", "resource_type": "Unit", "resource_id": "squad-a"}
        mine = await dev.post("/api/v1/policies/check", json=check)
        others = await dev.post("/api/v1/policies/check", json={**check, "developer": "root"})
    assert listed.status_code == 200
    assert "payments-budgets-frozen" in [p["id"] for p in listed.json()["policies"]]
    assert mine.status_code == 200
    assert mine.json()["allowed"] is False
    assert mine.json()["policy_ids"] == ["payments-budgets-frozen"]
    assert others.status_code == 403


async def test_a_role_table_refusal_is_audited_with_its_rule(api: Api) -> None:
    budget = {"scope": "team", "subject": "squad-b", "cap_usd": "5"}
    async with api.client("vic") as viewer:
        refused = await viewer.put("/api/v1/budgets/b", json=budget)
    async with api.client("lena") as lead:  # a lead of squad-a, not of squad-b
        outside = await lead.put("/api/v1/budgets/b", json=budget)
    assert refused.status_code == 403 and outside.status_code == 403
    entries = api.accounting.audit.list(action="role.deny")
    by_actor = {e.actor: e for e in entries}
    assert by_actor["developer:vic"].target == "change_budget"
    assert by_actor["developer:vic"].details["rule"] == "roles:change_budget"
    assert by_actor["developer:vic"].details["roles"] == ["viewer"]
    assert by_actor["developer:lena"].details["rule"] == "lead_of:change_budget"
