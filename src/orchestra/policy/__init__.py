"""Policies with Cedar: who may do what, decided from files in version control.

:class:`PolicyEngine` decides (:meth:`~PolicyEngine.decide`) and enforces
(:meth:`~PolicyEngine.require`: audit the refusal, raise :class:`PolicyDenied`) requests
made of a :class:`Principal`, an action (``call_model``, ``start_run`` ...) and a
:class:`Resource`. See ``docs/policies.md``.
"""

from orchestra.policy.cases import CaseResult, PolicyCases, read_cases, run_cases
from orchestra.policy.engine import (
    DecisionAudit,
    PolicyEngine,
    PolicySource,
    allowed_regions,
)
from orchestra.policy.model import Decision, PolicyDenied, Principal, Resource
from orchestra.policy.sources import (
    PolicyBundle,
    PolicyInvalid,
    PolicyProblem,
    load_bundle,
    merged_schema,
    policy_files,
)

__all__ = [
    "CaseResult",
    "Decision",
    "DecisionAudit",
    "PolicyBundle",
    "PolicyCases",
    "PolicyDenied",
    "PolicyEngine",
    "PolicyInvalid",
    "PolicyProblem",
    "PolicySource",
    "Principal",
    "Resource",
    "allowed_regions",
    "load_bundle",
    "merged_schema",
    "policy_files",
    "read_cases",
    "run_cases",
]
