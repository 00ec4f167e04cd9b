"""Example requests with expected decisions: what ``orchestra policy test`` runs.

A cases file (YAML or JSON) lists requests and the decision each should get::

    cases:
      - name: a viewer cannot spend
        principal: {developer: vic}        # a developer of orchestra.yaml's organisation
        action: call_model
        resource: {type: Model, id: claude-opus-4-1,
                   attrs: {provider: anthropic, region: eu, tier: opus}}
        context: {requested: opus, tier: opus, fallback: false}
        expect: deny
        policy: viewer-cannot-spend        # optional: must be among the deciding policies

A principal not in the organisation is written out: ``{kind: developer, id: x,
roles: [viewer], unit: squad-a, regions: [eu]}``.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestra.policy.engine import PolicyEngine
from orchestra.policy.model import Decision, Principal, Resource
from orchestra.policy.sources import PolicyInvalid, PolicyProblem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrincipalCase(_Strict):
    """Who asks: ``developer`` (from the organisation) or the fields of a principal."""

    developer: str | None = None
    kind: Literal["developer", "service", "anonymous"] = "developer"
    id: str | None = None
    roles: list[str] = Field(default_factory=list)
    unit: str | None = None
    lead_of: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)


class ResourceCase(_Strict):
    """An entity of the schema, with its attributes and parents (``[[Unit, eng]]``)."""

    type: str
    id: str
    attrs: dict[str, Any] = Field(default_factory=dict)
    parents: list[tuple[str, str]] = Field(default_factory=list)


class PolicyCase(_Strict):
    """One example request and the decision it must get."""

    name: str
    principal: PrincipalCase
    action: str
    resource: ResourceCase
    context: dict[str, Any] = Field(default_factory=dict)
    expect: Literal["permit", "deny"]
    policy: str | None = None
    """A policy id that must be among the deciding ones."""


class PolicyCases(_Strict):
    """A cases file."""

    cases: list[PolicyCase] = Field(min_length=1)


@dataclass(frozen=True)
class CaseResult:
    """One case run: passed when the decision (and the policy, if named) matched."""

    case: PolicyCase
    decision: Decision
    passed: bool


def read_cases(path: Path) -> PolicyCases:
    """Read and check a cases file; raises :class:`PolicyInvalid` naming what and where."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        return PolicyCases.model_validate(data)
    except OSError as exc:
        raise PolicyInvalid([PolicyProblem(str(path), 1, 1, f"cannot read: {exc}")]) from exc
    except (ValueError, yaml.YAMLError) as exc:
        if isinstance(exc, ValidationError):
            problems = [
                PolicyProblem(str(path), 1, 1, f"{'.'.join(map(str, e['loc']))}: {e['msg']}")
                for e in exc.errors()
            ]
            raise PolicyInvalid(problems) from exc
        raise PolicyInvalid([PolicyProblem(str(path), 1, 1, f"not YAML/JSON: {exc}")]) from exc


def principal_of(engine: PolicyEngine, case: PrincipalCase) -> Principal:
    """The principal a case names; an unknown developer is refused with the close names."""
    if case.developer is not None:
        found = engine.principal_for_developer(case.developer)
        if found is None:
            known = engine.developer_names()
            close = difflib.get_close_matches(case.developer, known, n=3)
            also = f" (did you mean {', '.join(close)}?)" if close else ""
            raise PolicyInvalid(
                [PolicyProblem("cases", 1, 1, f"no developer {case.developer!r}{also}")]
            )
        return found
    if case.kind == "anonymous":
        return Principal.anonymous()
    return Principal(
        kind=case.kind,
        id=case.id or "unnamed",
        roles=frozenset(case.roles),
        unit=case.unit,
        lead_of=tuple(case.lead_of),
        regions=tuple(case.regions),
        scopes=frozenset(case.scopes),
    )


def run_cases(engine: PolicyEngine, cases: PolicyCases) -> list[CaseResult]:
    """Decide every case (nothing audited) and compare with what it expects."""
    results: list[CaseResult] = []
    for case in cases.cases:
        resource = Resource(
            case.resource.type,
            case.resource.id,
            case.resource.attrs,
            tuple(case.resource.parents),
        )
        decision = engine.decide(
            principal_of(engine, case.principal), case.action, resource, case.context
        )
        passed = decision.allowed == (case.expect == "permit") and (
            case.policy is None or case.policy in decision.policy_ids
        )
        results.append(CaseResult(case, decision, passed))
    return results
