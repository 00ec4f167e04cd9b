"""Payloads in GitHub's and GitLab's documented webhook formats (trimmed to the fields
the documentation lists for each event), an organisation, and ledger rows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestra.accounting import rebuild_rollups
from orchestra.analytics import receive
from orchestra.config import OrganisationSection
from orchestra.org import OrgTree, build_org_tree, load_org, sync_org
from orchestra.store import Database, open_database
from orchestra.store.tables.engine import RunRow
from orchestra.store.tables.gateway import GatewayBudget, GatewayLedgerEntry

REPO = "acme/shop"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _repo() -> dict[str, Any]:
    return {"id": 1, "name": "shop", "full_name": REPO, "owner": {"login": "acme"}}


def pull_request(
    number: int,
    *,
    author: str = "alice",
    opened: datetime = T0,
    merged: datetime | None = None,
    sha: str | None = None,
    branch: str | None = None,
    additions: int = 100,
    deletions: int = 0,
) -> dict[str, Any]:
    return {
        "action": "closed" if merged else "opened",
        "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{REPO}/pulls/{number}",
            "id": 1000 + number,
            "number": number,
            "state": "closed" if merged else "open",
            "title": f"Change {number}",
            "user": {"login": author, "id": 7},
            "created_at": iso(opened),
            "updated_at": iso(merged or opened),
            "closed_at": iso(merged) if merged else None,
            "merged_at": iso(merged) if merged else None,
            "merge_commit_sha": sha,
            "merged": merged is not None,
            "head": {"ref": branch or f"feature-{number}", "sha": "f" * 40},
            "base": {"ref": "main", "sha": "e" * 40},
            "additions": additions,
            "deletions": deletions,
        },
        "repository": _repo(),
        "sender": {"login": author},
    }


def review(
    number: int, submitted: datetime, *, opened: datetime = T0, branch: str | None = None
) -> dict[str, Any]:
    payload = pull_request(number, opened=opened, branch=branch)
    payload["action"] = "submitted"
    for key in ("additions", "deletions", "merged", "merged_at"):  # not in a review's PR
        del payload["pull_request"][key]
    payload["review"] = {
        "id": 5,
        "user": {"login": "bob"},
        "state": "approved",
        "submitted_at": iso(submitted),
    }
    return payload


def deployment_status(
    deployment_id: int, sha: str, state: str, at: datetime, *, environment: str = "production"
) -> dict[str, Any]:
    return {
        "action": "created",
        "deployment_status": {
            "id": 9000 + deployment_id,
            "state": state,
            "environment": environment,
            "created_at": iso(at),
            "updated_at": iso(at),
        },
        "deployment": {
            "id": deployment_id,
            "sha": sha,
            "ref": "main",
            "task": "deploy",
            "environment": environment,
            "created_at": iso(at - timedelta(minutes=10)),
            "updated_at": iso(at),
        },
        "repository": _repo(),
        "sender": {"login": "deploy-bot"},
    }


def issue(
    number: int,
    *,
    labels: list[str],
    opened: datetime,
    closed: datetime | None = None,
    body: str = "",
    title: str | None = None,
) -> dict[str, Any]:
    return {
        "action": "closed" if closed else "opened",
        "issue": {
            "id": 500 + number,
            "number": number,
            "title": title or f"Issue {number}",
            "body": body,
            "user": {"login": "ops"},
            "labels": [{"id": i, "name": name} for i, name in enumerate(labels)],
            "state": "closed" if closed else "open",
            "created_at": iso(opened),
            "updated_at": iso(closed or opened),
            "closed_at": iso(closed) if closed else None,
        },
        "repository": _repo(),
        "sender": {"login": "ops"},
    }


_COUNTER = iter(range(1, 1_000_000))


def github(db: Database, event: str, payload: dict[str, Any]) -> None:
    receive(db, source="github", event=event, delivery_id=f"d-{next(_COUNTER)}", payload=payload)


def organisation(db: Database) -> None:
    section = OrganisationSection.model_validate(
        {
            "name": "acme",
            "units": [
                {"name": "retail", "kind": "division"},
                {"name": "checkout", "kind": "tribe", "parent": "retail"},
                {"name": "payments", "kind": "squad", "parent": "checkout"},
                {"name": "search", "kind": "squad", "parent": "retail"},
            ],
            "developers": [
                {"name": "alice", "unit": "payments", "email": "alice@acme.test"},
                {"name": "bob", "unit": "payments"},
                {"name": "lead", "unit": "checkout", "role": "lead"},
                {"name": "carol", "unit": "search"},
                {"name": "root", "role": "admin"},
            ],
        }
    )
    sync_org(db, build_org_tree(section))


def run_row(run_id: str, finished_at: datetime | None = T0, **more: Any) -> RunRow:
    """A run that succeeded (``more``: other columns)."""
    return RunRow(
        **{
            "id": run_id,
            "task": "t",
            "pipeline": "test-first",
            "repo_path": "/r",
            "status": "succeeded",
            "created_at": T0,
            "updated_at": T0,
            "finished_at": finished_at,
            **more,
        }
    )


def ledger(db: Database, rows: list[tuple[Any, ...]]) -> None:
    """(id, developer, run id, cost in nano-dollars, started[, outcome]) -> ledger rows."""
    squads = {"alice": "payments", "bob": "payments", "carol": "search"}
    tribes = {"payments": "checkout"}
    with db.session() as session:
        for ident, developer, run_id, cost, at, *rest in rows:
            squad = squads.get(developer or "")
            session.add(
                GatewayLedgerEntry(
                    id=ident,
                    started_at=at,
                    ended_at=at,
                    org="acme",
                    developer=developer,
                    squad=squad,
                    tribe=tribes.get(squad or ""),
                    run_id=run_id,
                    cost_nano=cost,
                    outcome=rest[0] if rest else "ok",
                    latency_ms=100.0,
                    input_tokens=0,
                    output_tokens=0,
                    cache_read_tokens=0,
                    cache_write_tokens=0,
                    retries=0,
                    fallback_path="",
                    stream=False,
                )
            )
        # Written around the ledger writer: sum them into the rollups the figures read.
        session.flush()
        rebuild_rollups(session.connection())


def budget(
    db: Database, name: str, scope: str, subject: str, cap_usd: float, period: str = "month"
) -> None:
    """A budget row as `orchestra budgets set` stores it (80 % soft line)."""
    with db.session() as session:
        session.add(
            GatewayBudget(
                id=f"bud_{name}",
                name=name,
                scope=scope,
                subject=subject,
                period=period,
                cap_nano=int(cap_usd * 1_000_000_000),
                soft_pct=80,
                source="api",
                created_at=T0,
            )
        )


def sqlite_database(path: Path) -> Database:
    """A migrated SQLite database with the organisation stored (tests of one backend)."""
    database = open_database(f"sqlite:///{path / 'insight.db'}")
    organisation(database)
    return database


def _section(tree: OrgTree) -> dict[str, Any]:
    """``organisation:`` of ``orchestra.yaml`` for a stored tree."""
    return {
        "name": tree.name,
        "units": [{"name": u.name, "kind": u.kind, "parent": u.parent} for u in tree.units],
        "developers": [
            {"name": d.name, "role": d.role, "unit": d.unit, "email": d.email}
            for d in tree.developers
        ],
    }


@contextmanager
def served_app(
    tmp_path: Path,
    monkeypatch: Any,
    seed: Callable[[Database], None],
    developers: list[str],
) -> Iterator[tuple[Any, dict[str, str]]]:
    """The app ``orchestra serve`` builds over a database ``seed`` filled, and a gateway key
    for each of ``developers``; shut down on exit."""
    from orchestra.app import Orchestra
    from orchestra.server.app import OPTIONS_ENV, ServeOptions, app_from_environment

    monkeypatch.setenv("ORCHESTRA_HOME", str(tmp_path / "home"))
    config = tmp_path / "orchestra.yaml"
    config.write_text("gateway:\n  port: 0\n")
    url = f"sqlite:///{tmp_path / 'o.db'}"
    with Orchestra.from_environment(config_path=config, database_url=url) as root:
        seed(root.database)
        acc = root.accounting()
        keys = {name: acc.keys.create(name)[0] for name in developers}
        acc.close()
        tree = load_org(root.database)
    if tree is not None:  # the server knows people (roles, units) from its configuration
        config.write_text(json.dumps({"gateway": {"port": 0}, "organisation": _section(tree)}))
    options = ServeOptions(
        include_api=True, config_path=str(config), database_url=url, install_sighup=False
    )
    monkeypatch.setenv(OPTIONS_ENV, options.to_env())
    app = app_from_environment()
    try:
        yield app, keys
    finally:
        for hook in app.shutdown_hooks:
            asyncio.run(hook())
