"""A repository as Orchestra tests it: its environment, its test reports, its gates.

Below ``pipelines`` and above ``tools``/``config``: the pipeline asks this package how a
repository's tests run (:func:`resolve_environment`), runs them with a structured report
(:func:`run_test_suite`), checks the baseline before any model call (:func:`preflight`)
and judges the red phase per test case (:func:`judge_red_cases`).
"""

from orchestra.repository.environment import (
    TestEnvironment,
    detect_environment,
    resolve_environment,
    rewrite_pythonpath,
)
from orchestra.repository.errors import EnvironmentNotFound, PreflightFailed, RepositoryError
from orchestra.repository.keys import normalise_key, normalise_remote, repository_keys

__all__ = [
    "EnvironmentNotFound",
    "PreflightFailed",
    "RepositoryError",
    "TestEnvironment",
    "detect_environment",
    "normalise_key",
    "normalise_remote",
    "repository_keys",
    "resolve_environment",
    "rewrite_pythonpath",
]
