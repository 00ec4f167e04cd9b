"""The gateway's run endpoints: an engine on another machine gets one key per pipeline run.

``POST /v1/orchestra/runs`` (``{"run_id": ..., "budget_usd": ...}``), called with the
developer's own key, returns a new key for that run: owned by the same developer and
team (so their budgets govern the run) and bound to the run (so the run's budget, set
here, is reserved against on every call it makes); the run's earlier keys are revoked.
A worker sharing a database with others names itself (``"holder"``) and the dead workers
whose part of the run it recovers (``"fence"``): then only its own earlier key, theirs and
keys held by no worker are revoked, and another live worker holding part of the run keeps
its key. ``POST /v1/orchestra/runs/end`` (``{"run_id": ...}``) revokes every key of the
run when the run ends.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

from orchestra.accounting.keys import KeyHolding
from orchestra.gateway.accounts import Caller
from orchestra.gateway.asgi import Receive, Scope, headers_of, read_body
from orchestra.gateway.errors import BadRequest, Forbidden
from orchestra.gateway.service import Gateway

RUNS_PATH = "/v1/orchestra/runs"
RUNS_END_PATH = "/v1/orchestra/runs/end"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_EXECUTOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_MAX_FENCE = 32
_MAX_BODY = 4096


async def _request(
    gateway: Gateway, scope: Scope, receive: Receive
) -> tuple[Caller, dict[str, Any]]:
    headers = headers_of(scope)
    caller = await gateway.authenticate(headers)
    raw = await read_body(receive, headers, _MAX_BODY)
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest("the body is not JSON", hint='send {"run_id": "..."}') from exc
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", hint='send {"run_id": "..."}')
    run_id = body.get("run_id")
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise BadRequest(
            "run_id must be a run id (letters, digits and . _ : -, at most 64)",
            hint='send {"run_id": "run-..."}',
        )
    return caller, body


def _budget(body: dict[str, Any]) -> Decimal | None:
    value = body.get("budget_usd")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise BadRequest(
            "budget_usd must be a number of dollars, zero or more (or null)",
            hint='send e.g. {"run_id": "...", "budget_usd": 2.5}',
        )
    return Decimal(str(value))


def _holding(body: dict[str, Any]) -> KeyHolding | None:
    """The worker the key is for and the dead workers it replaces (``None``: no worker)."""
    holder, fence = body.get("holder"), body.get("fence", [])
    hint = 'send e.g. {"run_id": "...", "holder": "worker-2", "fence": ["worker-1"]}'
    if holder is not None and (not isinstance(holder, str) or not _EXECUTOR_ID.match(holder)):
        raise BadRequest(
            "holder must be a worker's executor id (letters, digits and . _ : -, at most 128)",
            hint=hint,
        )
    if (
        not isinstance(fence, list)
        or len(fence) > _MAX_FENCE
        or not all(isinstance(e, str) and _EXECUTOR_ID.match(e) for e in fence)
    ):
        raise BadRequest(f"fence must be a list of at most {_MAX_FENCE} executor ids", hint=hint)
    if holder is None:
        if fence:
            raise BadRequest("fence needs the holder it hands the run to", hint=hint)
        return None
    return KeyHolding(holder, tuple(fence))


async def open_run(gateway: Gateway, scope: Scope, receive: Receive) -> dict[str, Any]:
    """Answer ``POST /v1/orchestra/runs``: the new run key's secret (shown once)."""
    caller, body = await _request(gateway, scope, receive)
    if caller.run_id is not None:
        raise Forbidden(
            "a run's key cannot open runs",
            hint="open runs with the developer's own key (engine.gateway_key_env)",
        )
    run_id = str(body["run_id"])
    budget = _budget(body)
    holding = _holding(body)
    secret = await gateway.blocking(gateway.accountant.open_run, caller, run_id, budget, holding)
    return {
        "run_id": run_id,
        "key": secret,
        "developer": caller.developer,
        "team": caller.team,
        "budget_usd": None if budget is None else float(budget),
    }


async def end_run(gateway: Gateway, scope: Scope, receive: Receive) -> dict[str, Any]:
    """Answer ``POST /v1/orchestra/runs/end``: how many keys of the run were revoked."""
    caller, body = await _request(gateway, scope, receive)
    run_id = str(body["run_id"])
    if caller.run_id is not None and caller.run_id != run_id:
        raise Forbidden("a run's key can only end its own run", hint="use the developer's key")
    revoked = await gateway.blocking(gateway.accountant.end_run, caller, run_id)
    return {"run_id": run_id, "revoked": revoked}
