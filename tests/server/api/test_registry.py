"""The agent registry through the REST API: publish, review, provenance, diff, search,
pools and seeding — each change audited with the caller, each refusal (by the role table
or by a policy) 403 and audited with the rule or policy id that refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.roster.agentfiles import agent_text, prompt_for
from tests.server.api.conftest import Api, api_config, make_api

pytestmark = pytest.mark.anyio

NO_YANK = (
    '@id("nothing-is-yanked")\nforbid (principal, action == Action::"yank_agent", resource);\n'
)
V1 = "/api/v1/registry/agents/python-developer/versions"


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Api]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "registry.cedar").write_text(NO_YANK)
    config = api_config()
    config = config.model_copy(
        update={"policies": config.policies.model_copy(update={"folder": "policies"})}
    )
    yield from make_api(tmp_path, config)


async def test_publish_review_provenance_and_refusals(reg: Api) -> None:
    async with reg.client("root") as admin:
        assert (await admin.post("/api/v1/org/sync")).status_code == 200
        seeded = await admin.post("/api/v1/registry/seed")
    assert seeded.status_code == 200, seeded.text
    assert len(seeded.json()["published"]) == 119 and seeded.json()["unchanged"] == 0
    text = agent_text("python-developer", tier="sonnet", fallback="opus", body=prompt_for("v2"))
    async with reg.client("dev") as dev:
        published = await dev.post("/api/v1/registry/agents", json={"definition": text})
        refused = await dev.post(f"{V1}/2/approve", json={"note": "mine"})
        bad = await dev.post("/api/v1/registry/agents", json={"definition": "no front matter"})
    assert published.status_code == 201, published.text
    assert published.json()["state"] == "pending" and published.json()["publisher"] == "dev"
    assert refused.status_code == 403  # a developer cannot approve an agent
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "invalid_request"
    async with reg.client("vic") as viewer:
        assert (
            await viewer.post("/api/v1/registry/agents", json={"definition": text})
        ).status_code == 403
    async with reg.client("lena") as lead:
        approved = await lead.post(f"{V1}/v2/approve", json={"note": "ok"})
        again = await lead.post(f"{V1}/2/approve", json={})
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved" and approved.json()["reviewed_by"] == "lena"
    assert again.status_code == 409
    async with reg.client("root") as admin:
        yanked = await admin.post(f"{V1}/1/yank", json={})  # forbidden by a policy, even so
    assert yanked.status_code == 403 and "nothing-is-yanked" in yanked.json()["error"]["message"]

    async with reg.client("vic") as viewer:
        shown = await viewer.get("/api/v1/registry/agents/python-developer")
        one = await viewer.get(f"{V1}/2")
        diff = await viewer.get(
            "/api/v1/registry/agents/python-developer/diff", params={"old": "1", "new": "v2"}
        )
        found = await viewer.get("/api/v1/registry/agents", params={"q": "python", "limit": 2})
        missing = await viewer.get(f"{V1}/9")
    assert shown.json()["served"] == 2
    assert [(v["version"], v["publisher"]) for v in shown.json()["versions"]] == [
        (1, "orchestra"),
        (2, "dev"),
    ]
    assert one.json()["definition"] == text
    assert "+tier: sonnet" in diff.json()["diff"]
    assert len(found.json()["items"]) == 2 and found.json()["next_offset"] == 2
    assert missing.status_code == 404 and "has no version v9" in missing.json()["error"]["message"]

    audit = reg.accounting.audit
    assert [e.actor for e in audit.list(action="registry.publish")] == ["developer:dev"]
    assert [e.actor for e in audit.list(action="registry.approve")] == ["developer:lena"]
    rules = {(e.actor, e.details["rule"]) for e in audit.list(action="role.deny")}
    assert ("developer:dev", "roles:approve_agent") in rules
    assert ("developer:vic", "roles:publish_agent") in rules
    (denial,) = audit.list(action="policy.deny")
    assert denial.actor == "developer:root"
    assert denial.details["policy_ids"] == ["nothing-is-yanked"]


async def test_pools_are_set_by_their_leads_and_inherited(reg: Api) -> None:
    async with reg.client("root") as admin:
        await admin.post("/api/v1/org/sync")
        await admin.post("/api/v1/registry/seed")
        top = await admin.put(
            "/api/v1/registry/pools/payments",
            json={"entries": ["python-developer", "python-reviewer", "go-developer"]},
        )
    assert top.status_code == 200, top.text
    async with reg.client("lena") as lead:  # leads squad-a only
        mine = await lead.put(
            "/api/v1/registry/pools/squad-a", json={"entries": ["python-developer"]}
        )
        other = await lead.put("/api/v1/registry/pools/squad-b", json={"entries": ["go-developer"]})
        wider = await lead.put(
            "/api/v1/registry/pools/squad-a", json={"entries": ["rust-developer"]}
        )
    assert mine.status_code == 200, mine.text
    assert mine.json()["agents"] == ["python-developer"]
    assert mine.json()["restricted_by"] == ["squad-a", "payments"]
    assert other.status_code == 403 and "leads" in other.json()["error"]["message"]
    assert wider.status_code == 409  # a unit only narrows its parent's pool
    async with reg.client("dev") as dev:
        pool = await dev.get("/api/v1/registry/developers/dev/pool")
        b = await dev.get("/api/v1/registry/pools/squad-b")
        refused = await dev.delete("/api/v1/registry/pools/squad-a")
        unknown = await dev.get("/api/v1/registry/pools/squad-z")
    assert pool.json()["agents"] == ["python-developer"]
    assert b.json()["own"] is None and len(b.json()["agents"]) == 3  # inherited
    assert refused.status_code == 403
    assert unknown.status_code == 404
    async with reg.client("lena") as lead:
        cleared = await lead.delete("/api/v1/registry/pools/squad-a")
    assert cleared.status_code == 200 and cleared.json()["own"] is None
    actions = [e.action for e in reg.accounting.audit.list(action="registry.pool")]
    assert actions == ["registry.pool.clear", "registry.pool.set", "registry.pool.set"]
