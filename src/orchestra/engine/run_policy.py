"""The policies on runs: who may start one on which repository, with how large a budget.

``start_run`` on ``Repository::"<path>"`` (with the ``tags`` of its settings under
``repositories:`` in ``orchestra.yaml``) and the context ``budget_cents`` (the run's
budget; a run without one counts as :data:`NO_BUDGET_CENTS`, larger than any cap) and
``pipeline``. A refusal is audited with the deciding policy ids and raises
:class:`~orchestra.policy.PolicyDenied` before anything of the run is recorded.
"""

from __future__ import annotations

from pathlib import Path

from orchestra.config.schema import OrchestraConfig
from orchestra.policy import Decision, PolicyEngine, Principal, Resource
from orchestra.repository import normalise_key, repository_keys

NO_BUDGET_CENTS = 10**12
"""``budget_cents`` of a run without a budget: above any cap a policy may set."""


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
    principal: Principal,
    repo: Path,
    budget_usd: float | None,
    pipeline: str,
) -> Decision:
    """The permit to start the run; audits the refusal and raises ``PolicyDenied``."""
    cents = NO_BUDGET_CENTS if budget_usd is None else round(budget_usd * 100)
    return policy.require(
        principal,
        "start_run",
        repository_resource(repo, config),
        {"budget_cents": cents, "pipeline": pipeline},
    )
