"""The API equivalents of ``orchestra survey open / close`` and ``orchestra insight plan
--record``: leads and admins only (a developer and a viewer are refused, a scoped lead
records only its own units' plans), audited under the caller's name, and bad input
answered with a clear 4xx naming what (an unknown round with its close matches)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.api.conftest import Api

pytestmark = pytest.mark.anyio


def _audited(api: Api, action: str) -> list[Any]:
    return [e for e in api.accounting.audit.list(limit=500) if e.action == action]


async def _sync_org(api: Api) -> None:
    async with api.client("root") as admin:
        synced = await admin.post("/api/v1/org/sync", json={})
    assert synced.status_code == 200, synced.text


async def test_a_lead_opens_and_closes_a_round_and_both_are_audited(api: Api) -> None:
    async with api.client("lena") as lead:
        opened = await lead.post("/api/v1/surveys", json={"round": "2026-q4", "title": "Q4"})
        assert opened.status_code == 201, opened.text
        assert opened.json()["opened_by"] == "lena" and opened.json()["closed_at"] is None
        twice = await lead.post("/api/v1/surveys", json={"round": "2026-q4"})
        closed = await lead.post("/api/v1/surveys/2026-q4/close")
        listed = await lead.get("/api/v1/surveys")
    assert twice.status_code == 409 and "exists already" in twice.text
    assert closed.status_code == 200, closed.text
    assert closed.json()["closed_at"].endswith("Z") and closed.json()["respondents"] == 0
    assert opened.json()["opened_at"].endswith("Z")  # with its offset, on SQLite too
    assert [r["round"] for r in listed.json()["items"]] == ["2026-q4"]
    [open_entry] = _audited(api, "survey.open")
    [close_entry] = _audited(api, "survey.close")
    assert open_entry.actor == close_entry.actor == "developer:lena"
    assert open_entry.target == close_entry.target == "2026-q4"


async def test_developers_and_viewers_may_not_open_or_close_rounds(api: Api) -> None:
    async with api.client("root") as admin:
        assert (await admin.post("/api/v1/surveys", json={"round": "r1"})).status_code == 201
    for who in ("dev", "vic"):
        async with api.client(who) as client:
            opened = await client.post("/api/v1/surveys", json={"round": "r2"})
            closed = await client.post("/api/v1/surveys/r1/close")
        assert (opened.status_code, closed.status_code) == (403, 403), who
        assert "manage_surveys" in closed.json()["error"]["message"]
    async with api.client("vic") as viewer:
        rounds = (await viewer.get("/api/v1/surveys")).json()["items"]
    assert [(r["round"], r["closed_at"]) for r in rounds] == [("r1", None)]
    assert len(_audited(api, "survey.open")) == 1 and _audited(api, "survey.close") == []


async def test_bad_rounds_are_refused_with_what_is_wrong(api: Api) -> None:
    async with api.client("root") as admin:
        await admin.post("/api/v1/surveys", json={"round": "2026-q4"})
        unknown = await admin.post("/api/v1/surveys/2026-q3/close")
        bad_name = await admin.post("/api/v1/surveys", json={"round": "Q4 2026"})
        empty = await admin.post("/api/v1/surveys", json={"round": ""})
        extra = await admin.post("/api/v1/surveys", json={"round": "r", "owner": "x"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["hint"] == "did you mean 2026-q4?"
    assert bad_name.status_code == 400 and "cannot be used" in bad_name.text
    assert empty.status_code == 400 and extra.status_code == 400


async def test_recording_a_plan_stores_a_progress_snapshot_each_time(api: Api) -> None:
    await _sync_org(api)
    async with api.client("lena") as lead:
        first = await lead.post(
            "/api/v1/insight/plan/snapshots", json={"target": "medium", "unit": "squad-a"}
        )
        assert first.status_code == 201, first.text
        second = await lead.post(
            "/api/v1/insight/plan/snapshots",
            json={"target": "medium", "unit": "squad-a", "start": "2027-01-04"},
        )
    body = second.json()
    assert first.json()["snapshots"] == 1 and body["snapshots"] == 2
    assert body["unit"] == "squad-a" and body["target"] == "medium"
    assert body["plan"]["phases"][0]["starts"] == "2027-01-04"
    assert len(body["plan"]["progress"]) == 2
    entries = _audited(api, "insight.plan.record")
    assert [e.actor for e in entries] == ["developer:lena"] * 2
    assert entries[0].target == "squad-a" and entries[0].details["target"] == "medium"


async def test_who_may_record_a_plan_and_bad_plans(api: Api) -> None:
    # lena, a lead of squad-a, leads that unit only
    await _sync_org(api)
    async with api.client("dev") as developer:
        refused = await developer.post(
            "/api/v1/insight/plan/snapshots", json={"target": "medium", "unit": "squad-a"}
        )
    async with api.client("lena") as lead:
        other_unit = await lead.post(
            "/api/v1/insight/plan/snapshots", json={"target": "medium", "unit": "squad-b"}
        )
        unknown_unit = await lead.post(
            "/api/v1/insight/plan/snapshots", json={"target": "medium", "unit": "squad-z"}
        )
    async with api.client("root") as admin:
        backwards = await admin.post(
            "/api/v1/insight/plan/snapshots", json={"target": "solo", "unit": "squad-a"}
        )
        bad_period = await admin.post(
            "/api/v1/insight/plan/snapshots", json={"target": "medium", "period": "soon"}
        )
        bad_start = await admin.post(
            "/api/v1/insight/plan/snapshots", json={"target": "medium", "start": "monday"}
        )
    assert refused.status_code == 403
    assert other_unit.status_code == 403 and "leads" in other_unit.text
    assert unknown_unit.status_code in {403, 404}
    assert backwards.status_code == 400 and "cannot plan" in backwards.text
    assert bad_period.status_code == 400 and bad_start.status_code == 400
    assert _audited(api, "insight.plan.record") == []


async def test_an_unknown_unit_is_named_with_its_close_matches(api: Api) -> None:
    await _sync_org(api)
    async with api.client("root") as admin:
        unknown = await admin.post(
            "/api/v1/insight/plan/snapshots", json={"target": "medium", "unit": "squad-z"}
        )
    assert unknown.status_code == 404, unknown.text
    assert "squad-z" in unknown.json()["error"]["message"]
    assert "squad-a" in unknown.json()["error"]["hint"]
    assert _audited(api, "insight.plan.record") == []
