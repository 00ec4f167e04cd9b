"""The API equivalents of the mutating CLI commands that had none: ``secrets set/remove``
(admins; the value encrypted at rest, never answered, logged or audited), ``kb add /
forget / prune / reembed / ingest`` on the server's knowledge store (ingest only of an
allow-listed repository), ``agents import`` — each refused to the roles without it, and
audited."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestra.accounting import SecretBox, SecretStore
from orchestra.config import OrchestraConfig
from tests.roster.agentfiles import agent_text
from tests.server.api.conftest import ORG, Api, make_api

pytestmark = pytest.mark.anyio

VALUE = "sk-live-0123456789abcdef-not-for-logs"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Api]:
    docs = tmp_path / "handbook"
    docs.mkdir()
    (docs / "README.md").write_text("# Handbook\n\nDeploys go out on Tuesdays after review.\n")
    config = OrchestraConfig.model_validate(
        {"organisation": ORG, "server": {"repositories": {"handbook": str(docs)}}}
    )
    yield from make_api(tmp_path / "server", config)


async def test_secrets_are_stored_encrypted_never_echoed_and_audited_without_value(
    served: Api, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    async with served.client("lena") as lead:
        refused = await lead.put("/api/v1/secrets/openai", json={"value": VALUE})
    assert refused.status_code == 403
    async with served.client("root") as admin:
        stored = await admin.put("/api/v1/secrets/openai", json={"value": VALUE})
        assert stored.status_code == 200, stored.text
        assert VALUE not in stored.text
        assert (await admin.get("/api/v1/secrets")).json() == {"items": ["openai"]}
        bad = await admin.put("/api/v1/secrets/openai", json={"value": VALUE + " x"})
        assert bad.status_code == 400 and VALUE not in bad.text
        assert (await admin.put("/api/v1/secrets/..%2Fx", json={"value": "v"})).status_code in {
            400,
            404,
        }
        home = served.app.fallback.state.api.orchestra().home  # type: ignore[union-attr]
        on_disk = (home / "secrets.json").read_text()
        assert VALUE not in on_disk
        assert SecretStore(SecretBox.from_home(home), home / "secrets.json").get("openai") == VALUE
        removed = await admin.delete("/api/v1/secrets/openai")
        assert removed.json() == {"name": "openai", "stored": False}
        again = await admin.delete("/api/v1/secrets/openai")
        assert again.status_code == 404
    entries = served.accounting.audit.list()
    changes = [(e.actor, e.action, e.target) for e in entries if e.action.startswith("secret.")]
    assert sorted(changes) == [
        ("developer:root", "secret.remove", "openai"),
        ("developer:root", "secret.set", "openai"),
    ]  # the failed removal left no entry
    assert all(VALUE not in str(e.details) for e in entries)
    assert VALUE not in caplog.text


async def test_the_servers_knowledge_store_through_the_api(served: Api) -> None:
    note = {"text": "Releases are cut on Thursdays.", "kind": "convention", "project": "ops"}
    async with served.client("vic") as viewer:
        assert (await viewer.post("/api/v1/knowledge/entries", json=note)).status_code == 403
    async with served.client("dev") as dev:
        added = await dev.post("/api/v1/knowledge/entries", json={**note, "file": "RELEASE.md"})
        assert added.status_code == 201, added.text
        refused = await dev.post("/api/v1/knowledge/prune", json={})
        assert refused.status_code == 403
    async with served.client("lena") as lead:
        unknown = await lead.post("/api/v1/knowledge/ingest", json={"repository": "handbok"})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["hint"] == "did you mean handbook?"
        ingested = await lead.post("/api/v1/knowledge/ingest", json={"repository": "handbook"})
        assert ingested.status_code == 200, ingested.text
        assert ingested.json()["files_indexed"] == 1 and ingested.json()["chunks_added"] >= 1
        two = await lead.post("/api/v1/knowledge/forget", json={"file": "RELEASE.md", "run": "x"})
        assert two.status_code == 400  # one source at a time
        forgot = await lead.post("/api/v1/knowledge/forget", json={"file": "RELEASE.md"})
        assert forgot.json()["removed"] == 1
        pruned = await lead.post("/api/v1/knowledge/prune", json={"kind": "doc", "days": 0})
        assert pruned.status_code == 200 and pruned.json()["by_kind"] == {"doc": 1}
        reembedded = await lead.post("/api/v1/knowledge/reembed", json={})
        assert reembedded.status_code == 200
    actions = [(e.actor, e.action) for e in served.accounting.audit.list()]
    for expected in (
        ("developer:dev", "knowledge.add"),
        ("developer:lena", "knowledge.refused"),
        ("developer:lena", "knowledge.ingest"),
        ("developer:lena", "knowledge.forget"),
        ("developer:lena", "knowledge.prune"),
        ("developer:lena", "knowledge.reembed"),
    ):
        assert expected in actions
    assert all(
        "Thursdays" not in str(e.details) for e in served.accounting.audit.list()
    )  # the text is not audited


async def test_agents_import_validates_and_adds_to_the_servers_roster(served: Api) -> None:
    good = agent_text("ledger-reconciler", specialties="[ledgers, reconciliation, payouts]")
    async with served.client("lena") as lead:
        refused = await lead.post("/api/v1/agents/import", json={"files": {"a.md": good}})
        assert refused.status_code == 403
    async with served.client("root") as admin:
        bad = agent_text("broken-tools", tools="Read, Laser")
        invalid = await admin.post(
            "/api/v1/agents/import",
            json={"files": {"ledger-reconciler.md": good, "broken-tools.md": bad}},
        )
        assert invalid.status_code == 400
        assert "unknown tool 'Laser'" in invalid.json()["error"]["message"]
        name = await admin.post("/api/v1/agents/import", json={"files": {"../x.md": good}})
        assert name.status_code == 400
        done = await admin.post(
            "/api/v1/agents/import", json={"files": {"ledger-reconciler.md": good}}
        )
        assert done.status_code == 200, done.text
        assert done.json()["added"] == ["ledger-reconciler"]
    [entry] = served.accounting.audit.list(action="agents.import")
    assert entry.actor == "developer:root" and entry.details["added"] == ["ledger-reconciler"]
