"""A lead sees the keys and the spend of the units they lead (and below), not others';
a developer sees their own; an admin everything."""

from __future__ import annotations

import pytest

from orchestra.accounting import Attribution, LedgerEntry
from orchestra.providers import Usage
from tests.server.api.conftest import Api

pytestmark = pytest.mark.anyio


async def _key_owners(api: Api, who: str) -> set[str]:
    async with api.client(who) as client:
        listed = await client.get("/api/v1/keys", params={"limit": 500})
    assert listed.status_code == 200, listed.text
    return {k["developer"] for k in listed.json()["items"]}


async def test_a_lead_sees_the_keys_of_the_units_they_lead(api: Api) -> None:
    assert await _key_owners(api, "lena") == {"lena", "dev"}  # squad-a: not vic (squad-b)
    assert await _key_owners(api, "dev") == {"dev"}
    assert await _key_owners(api, "root") == {"root", "lena", "dev", "vic", "svc"}
    accounting = api.accounting
    accounting.keys.create("vic", "squad-a", actor="test")  # charged to squad-a: hers to see
    assert await _key_owners(api, "lena") == {"lena", "dev", "vic"}


async def test_a_lead_reads_the_spend_of_the_units_they_lead(api: Api) -> None:
    for developer, squad in (("dev", "squad-a"), ("vic", "squad-b"), ("vic", "squad-b")):
        who = Attribution(developer=developer, squad=squad, tribe="payments")
        api.accounting.ledger.append(
            LedgerEntry(who, "haiku", "claude-haiku-4-5", usage=Usage(9, 9))
        )
    async with api.client("lena") as lead:
        of_dev = await lead.get("/api/v1/spend", params={"developer": "dev"})
        of_unit = await lead.get("/api/v1/spend", params={"team": "squad-a"})
        mine_all = await lead.get("/api/v1/spend", params={"all": "true"})
        of_vic = await lead.get("/api/v1/spend", params={"developer": "vic"})
        of_other = await lead.get("/api/v1/spend", params={"team": "squad-b"})
    assert of_dev.status_code == 200 and of_dev.json()["developer"] == "dev"
    assert of_unit.status_code == 200 and of_unit.json()["team"] == "squad-a"
    assert mine_all.status_code == 200 and mine_all.json()["team"] == "squad-a"
    assert of_vic.status_code == 403 and of_other.status_code == 403
    assert [r.json()["total_requests"] for r in (of_dev, of_unit, mine_all)] == [1, 1, 1]
    async with api.client("root") as admin:
        everyone = await admin.get("/api/v1/spend", params={"all": "true"})
        tribe = await admin.get("/api/v1/spend", params={"team": "payments"})
    assert everyone.json()["total_requests"] == 3 and tribe.json()["total_requests"] == 3
    async with api.client("dev") as dev:
        others = await dev.get("/api/v1/spend", params={"team": "squad-a"})
        own = await dev.get("/api/v1/spend")
    assert others.status_code == 403
    assert own.status_code == 200 and own.json()["developer"] == "dev"
    denied = [e.actor for e in api.accounting.audit.list(action="role.deny")]
    assert denied.count("developer:lena") == 2 and "developer:dev" in denied
