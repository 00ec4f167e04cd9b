"""The webhook routes through the ASGI app: signatures, malformed bodies, redelivery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from orchestra.analytics import github_signature
from orchestra.config import OrchestraConfig
from orchestra.server.insight import insight_routes
from orchestra.store import Database
from orchestra.store.tables.insight import InsightChangeRow, InsightDeploymentRow
from tests.analytics.fixtures import REPO, T0, deployment_status, pull_request, sqlite_database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """SQLite only: what these tests check does not depend on the backend (the formulas'
    golden fixtures run on both)."""
    database = sqlite_database(tmp_path)
    yield database
    database.dispose()


SECRETS = {"gh": "It's a Secret to Everybody", "gl": "gitlab-token-1"}
GH = "/api/insight/webhooks/github"
GL = "/api/insight/webhooks/gitlab"

pytestmark = pytest.mark.anyio


@pytest.fixture
def client(db: Database) -> httpx.AsyncClient:
    config = OrchestraConfig.model_validate(
        {"insight": {"github_secret": "gh", "gitlab_secret": "gl"}}
    )
    app = Starlette(routes=insight_routes(config, db, SECRETS.__getitem__))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _signed(body: bytes, event: str, delivery: str, secret: str = SECRETS["gh"]) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": github_signature(secret, body),
        "Content-Type": "application/json",
    }


def test_github_documented_signature_example() -> None:
    # GitHub's documentation: secret "It's a Secret to Everybody", payload "Hello, World!"
    assert github_signature(SECRETS["gh"], b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


async def test_a_signed_pull_request_is_stored_once(
    client: httpx.AsyncClient, db: Database
) -> None:
    body = json.dumps(pull_request(7, merged=T0 + timedelta(hours=3), sha="c" * 40)).encode()
    first = await client.post(GH, content=body, headers=_signed(body, "pull_request", "u-1"))
    assert first.status_code == 202 and first.json()["records"] == 1
    again = await client.post(GH, content=body, headers=_signed(body, "pull_request", "u-1"))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    with db.session() as session:
        row = session.get(InsightChangeRow, f"github:{REPO}#7")
        assert row is not None and row.state == "merged" and row.merge_commit_sha == "c" * 40


async def test_bad_or_missing_signature_is_refused_with_401(
    client: httpx.AsyncClient, db: Database
) -> None:
    body = json.dumps(pull_request(8)).encode()
    wrong = await client.post(
        GH, content=body, headers=_signed(body, "pull_request", "u-2", secret="guess")
    )
    assert wrong.status_code == 401
    headers = _signed(body, "pull_request", "u-3")
    del headers["X-Hub-Signature-256"]
    assert (await client.post(GH, content=body, headers=headers)).status_code == 401
    tampered = body.replace(b"Change 8", b"Change 9")
    signed_for_original = _signed(body, "pull_request", "u-4")
    assert (await client.post(GH, content=tampered, headers=signed_for_original)).status_code == 401
    with db.session() as session:
        assert session.get(InsightChangeRow, f"github:{REPO}#8") is None


async def test_malformed_payloads_are_refused_with_400(client: httpx.AsyncClient) -> None:
    for body in (b"not json", b"[1, 2]", json.dumps({"pull_request": {"number": 1}}).encode()):
        answer = await client.post(GH, content=body, headers=_signed(body, "pull_request", "x"))
        assert answer.status_code == 400, body
        assert answer.json()["hint"]


async def test_deployment_statuses_in_any_order(client: httpx.AsyncClient, db: Database) -> None:
    done = deployment_status(3, "d" * 40, "success", T0 + timedelta(hours=1))
    pending = deployment_status(3, "d" * 40, "in_progress", T0)
    for i, payload in enumerate((done, pending)):
        body = json.dumps(payload).encode()
        answer = await client.post(
            GH, content=body, headers=_signed(body, "deployment_status", f"dep-{i}")
        )
        assert answer.status_code == 202
    with db.session() as session:
        row = session.get(InsightDeploymentRow, f"github:{REPO}:3")
        assert row is not None and row.status == "success"  # the late in_progress is ignored


def _gitlab_mr(iid: int, state: str, action: str) -> dict[str, object]:
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"id": 1, "name": "Alice", "username": "alice"},
        "project": {"id": 15, "name": "shop", "path_with_namespace": "acme/shop"},
        "object_attributes": {
            "id": 99,
            "iid": iid,
            "title": "Add checkout",
            "state": state,
            "action": action,
            "source_branch": "orchestra/run-1",
            "target_branch": "main",
            "created_at": "2026-11-02 09:00:00 UTC",
            "updated_at": "2026-11-03 10:30:00 UTC",
            "merge_commit_sha": "e" * 40 if state == "merged" else None,
        },
    }


async def test_gitlab_token_and_merge_request(client: httpx.AsyncClient, db: Database) -> None:
    for i, (state, action) in enumerate((("opened", "open"), ("merged", "merge"))):
        body = json.dumps(_gitlab_mr(4, state, action)).encode()
        headers = {
            "X-Gitlab-Event": "Merge Request Hook",
            "X-Gitlab-Token": SECRETS["gl"],
            "X-Gitlab-Event-UUID": f"gl-{i}",
        }
        assert (await client.post(GL, content=body, headers=headers)).status_code == 202
    bad = {
        "X-Gitlab-Event": "Merge Request Hook",
        "X-Gitlab-Token": "nope",
        "X-Gitlab-Event-UUID": "gl-9",
    }
    assert (await client.post(GL, content=b"{}", headers=bad)).status_code == 401
    with db.session() as session:
        row = session.get(InsightChangeRow, "gitlab:acme/shop#4")
        assert row is not None
        assert (row.author, row.state, row.branch) == ("alice", "merged", "orchestra/run-1")
        assert row.merged_at is not None and row.merged_at.hour == 10


async def test_an_unconfigured_source_answers_404(db: Database) -> None:
    app = Starlette(routes=insight_routes(OrchestraConfig(), db, SECRETS.__getitem__))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.post(GH, content=b"{}")).status_code == 404
