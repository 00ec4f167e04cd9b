"""The policies on runs: who may start one on which repository, with how large a budget,
and which reviews it may skip.

``start_run`` on ``Repository::"<path>"`` (with the ``tags`` of its settings under
``repositories:`` in ``orchestra.yaml``) and the context ``budget_cents`` (the run's
budget; a run without one counts as :data:`NO_BUDGET_CENTS`, larger than any cap) and
``pipeline``; then ``skip_phase`` on the same repository for each review of
``engine.skip_reviews`` (context ``phase``: the review's name, ``security`` ...). A
refusal is audited with the deciding policy ids and raises
:class:`~orchestra.policy.PolicyDenied` before anything of the run is recorded.
"""

from __future__ import annotations

from pathlib import Path

from orchestra.config.schema import OrchestraConfig
from orchestra.policy import Decision, PolicyEngine, Principal, Resource
from orchestra.repository import normalise_key, repository_keys

NO_BUDGET_CENTS = 10**12
"""``budget_cents`` of a run without a budget: above any cap a policy may set."""
ENGINE_PRINCIPAL = Principal(kind="service", id="engine")
"""Who asks to skip a review when no one is named: no role, so a skip stands only where
the policies allow it to anyone (``policies.default: permit``, no forbid)."""


def repository_resource(repo: Path, config: OrchestraConfig) -> Resource:
    """The repository as a Cedar entity: its path, and the tags of its settings."""
    tags: list[str] = []
    keys = set(repository_keys(repo))
    for configured, settings in config.repositories.overrides.items():
        if normalise_key(configured) in keys:
            tags = sorted(settings.tags)
            break
    return Resource("Repository", str(repo), {"tags": tags})


def require_run_start(
    policy: PolicyEngine,
    config: OrchestraConfig,
    principal: Principal | None,
    repo: Path,
    budget_usd: float | None,
    pipeline: str,
) -> list[Decision]:
    """The permits to start the run (when a principal is named) and to skip each review of
    ``engine.skip_reviews``; audits a refusal and raises ``PolicyDenied``."""
    repository = repository_resource(repo, config)
    decisions: list[Decision] = []
    if principal is not None:
        cents = NO_BUDGET_CENTS if budget_usd is None else round(budget_usd * 100)
        context = {"budget_cents": cents, "pipeline": pipeline}
        decisions.append(policy.require(principal, "start_run", repository, context))
    for review in config.engine.skip_reviews:
        who = principal or ENGINE_PRINCIPAL
        decisions.append(policy.require(who, "skip_phase", repository, {"phase": review}))
    return decisions
