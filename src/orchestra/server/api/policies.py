"""``/api/v1/policies``: the policy set in force, and checking a request against it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestra.policy import PolicyEngine, Resource
from orchestra.server.api.context import NotConfigured
from orchestra.server.api.endpoint import Call, Endpoint
from orchestra.server.api.policy_check import PolicyAuthorizer, policy_principal

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"


class PolicyOut(BaseModel):
    """One policy: its id and where it is written."""

    id: str
    file: str
    line: int


class PolicySet(BaseModel):
    """The policies in force."""

    version: str
    actions: list[str]
    policies: list[PolicyOut]


class CheckIn(BaseModel):
    """A request to decide: who (a configured developer; default: you), what, on what."""

    model_config = ConfigDict(extra="forbid")
    developer: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    action: str = Field(pattern=r"^[a-z_]{1,64}$")
    resource_type: str = Field(pattern=r"^[A-Z][A-Za-z]{0,63}$")
    resource_id: str = Field(pattern=_NAME)


class CheckOut(BaseModel):
    """The decision (not audited: nothing was done)."""

    allowed: bool
    policy_ids: list[str]
    reasons: list[str]
    version: str


def _engine(call: Call[Any, Any]) -> PolicyEngine:
    authorizer = call.ctx.authorizer
    if not isinstance(authorizer, PolicyAuthorizer):
        raise NotConfigured("this server decides by roles only", hint="serve with policies")
    return authorizer.engine()


async def _list_policies(call: Call[Any, Any]) -> PolicySet:
    bundle = _engine(call).bundle
    return PolicySet(
        version=bundle.version,
        actions=sorted(bundle.actions),
        policies=[
            PolicyOut(id=pid, file=text.file, line=text.line)
            for pid, text in sorted(bundle.sources.items())
        ],
    )


async def _check_policy(call: Call[Any, CheckIn]) -> CheckOut:
    engine = _engine(call)
    body = call.body
    principal = policy_principal(call.identity)
    if body.developer is not None and body.developer != principal.id:
        call.require("read_audit", None)  # asking about others: leads and admins
        other = engine.principal_for_developer(body.developer)
        if other is None:
            raise NotConfigured(f"no developer {body.developer!r} in the organisation")
        principal = other
    decision = engine.decide(principal, body.action, Resource(body.resource_type, body.resource_id))
    return CheckOut(
        allowed=decision.allowed,
        policy_ids=list(decision.policy_ids),
        reasons=list(decision.reasons),
        version=decision.version,
    )


ENDPOINTS = [
    Endpoint(
        "GET",
        "/policies",
        "read_policies",
        _list_policies,
        "The policies in force",
        PolicySet,
        tag="policies",
        statuses=(400, 401, 403, 404),
    ),
    Endpoint(
        "POST",
        "/policies/check",
        "check_policy",
        _check_policy,
        "Decide a request against the policies (not audited)",
        CheckOut,
        body=CheckIn,
        tag="policies",
        statuses=(400, 401, 403, 404),
    ),
]
