"""Runs through the REST API: the scripted pipeline started by ``POST /api/v1/runs`` on a
real uvicorn server on loopback (its own engine, the fake upstream behind its gateway),
charged to the caller; refusals (a viewer, a repository not allowed, a budget above the
role's maximum) answered with clear errors and audited."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestra.app import Orchestra
from orchestra.config import load_config
from orchestra.demo import scripted_config_yaml
from orchestra.engine import FINAL_STATUSES
from orchestra.engine.gateway_link import serve_on_loopback
from orchestra.server import build_app, hosting_engine
from orchestra.testing import FakeUpstream
from orchestra.testing.scripted import SAMPLE_TASK, ScriptedModel, create_sample_repository

pytestmark = pytest.mark.slow

ORG = """
organisation:
  name: acme
  units: [{name: squad-a, kind: squad}]
  developers:
    - {name: root, role: admin}
    - {name: dev, role: developer, unit: squad-a}
    - {name: vic, role: viewer, unit: squad-a}
"""
CAP = """
@id("developer-run-cap")
forbid (principal in Role::"developer", action == Action::"start_run", resource)
when { context.budget_cents > 500 };
"""


@dataclass
class Server:
    url: str
    keys: dict[str, str]
    accounting: Any

    def post(self, who: str, path: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.keys[who]}"}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=60)

    def get(self, who: str, path: str) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.keys[who]}"}
        return httpx.get(self.url + path, headers=headers, timeout=60)

    def wait(self, who: str, run_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 240  # a guard against a hang, not a timing target
        while True:
            run: dict[str, Any] = self.get(who, f"/api/v1/runs/{run_id}").json()["run"]
            if run["status"] in FINAL_STATUSES:
                return run
            assert time.monotonic() < deadline, run
            time.sleep(0.2)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    home = tmp_path / "home"
    monkeypatch.setenv("ORCHESTRA_HOME", str(home))
    monkeypatch.delenv("ORCHESTRA_DEVELOPER", raising=False)
    create_sample_repository(tmp_path / "sample")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "cap.cedar").write_text(CAP)
    extra = ORG + "policies: {folder: policies}\nserver:\n  repositories: {sample: sample}\n"
    # Small replies keep each call's reservation below a small budget (see
    # tests/engine/test_budget_resume.py): the plan fits in $0.2, the whole run does not.
    extra += "engine: {max_output_tokens: 600}\n"
    with FakeUpstream.start() as upstream:
        upstream.responder = ScriptedModel("happy")
        config_path = tmp_path / "orchestra.yaml"
        config_path.write_text(scripted_config_yaml(upstream.base_url, extra))
        config = load_config(config_path)
        database_url = f"sqlite:///{tmp_path / 'orchestra.db'}"
        app = build_app(config, database_url=database_url, config_path=config_path)
        services = Orchestra(
            database_url=database_url, home=home, config_given=config, config_path=config_path
        )
        hosted = hosting_engine(app, services)
        accounting = app.gateway.accountant.accounting  # type: ignore[attr-defined]
        keys = {
            name: accounting.keys.create(name, "squad-a" if name != "root" else None)[0]
            for name in ("root", "dev", "vic")
        }
        with serve_on_loopback(hosted, accounting) as gateway:
            yield Server(gateway.base_url, keys, accounting)


def test_a_run_started_through_the_api_finishes_charged_to_its_caller(server: Server) -> None:
    started = server.post(
        "dev", "/api/v1/runs", {"task": SAMPLE_TASK, "repository": "sample", "budget_usd": 2.0}
    )
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    busy = server.post("dev", f"/api/v1/runs/{run_id}/resume", {})
    assert busy.status_code == 409  # its worker is on it: not resumed twice
    assert "still being worked on" in busy.json()["error"]["message"]
    run = server.wait("dev", run_id)
    assert run["status"] == "succeeded", run["failure_reason"]
    assert run["budget_usd"] == 2.0

    [*_, last] = keys = server.accounting.keys.run_keys(run_id)
    assert {(k.developer, k.team) for k in keys} == {("dev", "squad-a")}
    assert last.revoked_at is not None  # the run's key ends with it
    server.accounting.ledger.flush()
    charged = {
        (e.attribution.developer, e.attribution.squad)
        for e in server.accounting.ledger.entries()
        if e.attribution.run_id == run_id
    }
    assert charged == {("dev", "squad-a")}
    report = server.get("dev", f"/api/v1/runs/{run_id}/report")
    assert report.status_code == 200
    assert report.json()["report"]["tests"]["green"]["failed"] == 0

    [entry] = server.accounting.audit.list(action="run.start")
    assert (entry.actor, entry.target) == ("developer:dev", run_id)

    again = server.post("dev", f"/api/v1/runs/{run_id}/resume", {})
    assert again.status_code == 409, again.text  # it ended; nothing to continue
    assert "already ended" in again.json()["error"]["message"]


def test_refusals_are_clear_and_audited(server: Server) -> None:
    body = {"task": SAMPLE_TASK, "repository": "sample", "budget_usd": 1.0}
    viewer = server.post("vic", "/api/v1/runs", body)
    assert viewer.status_code == 403
    assert viewer.json()["error"]["type"] == "not_allowed"
    [role] = server.accounting.audit.list(action="role.deny")
    assert (role.actor, role.target, role.details["rule"]) == (
        "developer:vic",
        "start_run",
        "roles:start_run",
    )

    unknown = server.post("dev", "/api/v1/runs", {**body, "repository": "sampel"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["hint"] == "did you mean sample?"
    path = server.post("dev", "/api/v1/runs", {**body, "repository": "/etc"})
    assert path.status_code == 404  # a path is never a repository's name
    refused = server.accounting.audit.list(action="run.refused")
    assert sorted(e.target for e in refused) == ["/etc", "sampel"]
    assert all(e.actor == "developer:dev" for e in refused)

    above = server.post("dev", "/api/v1/runs", {**body, "budget_usd": 6.0})
    assert above.status_code == 403
    assert "developer-run-cap" in above.json()["error"]["message"]
    [denied] = server.accounting.audit.list(action="policy.deny")
    assert denied.actor == "developer:dev"
    assert denied.details["policy_ids"] == ["developer-run-cap"]
    assert (
        server.post("root", "/api/v1/runs", {**body, "budget_usd": 6.0, "task": " "}).status_code
        == 400
    )

    listed = server.get("dev", "/api/v1/runs").json()["items"]
    assert listed == []  # nothing of a refused run was recorded


def test_a_server_started_run_takes_its_agents_from_the_callers_pool(
    server: Server, tmp_path: Path
) -> None:
    assert server.post("root", "/api/v1/registry/seed", {}).status_code == 200
    assert server.post("root", "/api/v1/org/sync", {}).status_code == 200
    # squad-a's pool lacks the planner the pipeline starts with.
    pool = ["test-writer", "python-developer", "code-reviewer", "readme-writer", "qa-lead"]
    set_pool = httpx.put(
        server.url + "/api/v1/registry/pools/squad-a",
        json={"entries": pool},
        headers={"authorization": f"Bearer {server.keys['root']}"},
    )
    assert set_pool.status_code == 200, set_pool.text

    started = server.post("dev", "/api/v1/runs", {"task": SAMPLE_TASK, "repository": "sample"})
    assert started.status_code == 201, started.text
    run = server.wait("dev", started.json()["id"])
    assert run["status"] == "failed"
    assert "chief-architect" in run["failure_reason"]
    assert "squad-a" in run["failure_reason"]  # the pool that refused it is named
    recorded = tmp_path / "home" / "runs" / run["id"] / "pool.json"
    assert json.loads(recorded.read_text()) == {"developer": "dev"}  # for its resumes


def test_a_run_stopped_by_its_budget_is_resumed_through_the_api_with_a_higher_one(
    server: Server,
) -> None:
    body = {"task": SAMPLE_TASK, "repository": "sample", "budget_usd": 0.2}
    run_id = server.post("dev", "/api/v1/runs", body).json()["id"]
    stopped = server.wait("dev", run_id)
    assert stopped["status"] == "failed" and "budget" in stopped["failure_reason"]

    no_budget = server.post("dev", f"/api/v1/runs/{run_id}/resume", {})
    assert no_budget.status_code == 409
    assert "budget_usd" in no_budget.json()["error"]["hint"]
    assert server.post("vic", f"/api/v1/runs/{run_id}/resume", {}).status_code == 403
    above = server.post("dev", f"/api/v1/runs/{run_id}/resume", {"budget_usd": 6.0})
    assert above.status_code == 403 and "developer-run-cap" in above.text

    resumed = server.post("dev", f"/api/v1/runs/{run_id}/resume", {"budget_usd": 2.0})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "running"
    run = server.wait("dev", run_id)
    assert run["status"] == "succeeded", run["failure_reason"]
    assert run["budget_usd"] == 2.0
    keys = server.accounting.keys.run_keys(run_id)
    assert len(keys) == 2 and {k.developer for k in keys} == {"dev"}  # still the starter's
    [entry] = server.accounting.audit.list(action="run.resume")
    assert (entry.actor, entry.target, entry.details) == (
        "developer:dev",
        run_id,
        {"budget_usd": 2.0},
    )
