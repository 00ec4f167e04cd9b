"""A repository as Orchestra tests it: its environment, its test reports, its gates.

Below ``pipelines`` and above ``tools``/``config``. A pipeline asks this package how a
repository's tests run (:func:`resolve_environment`), checks the baseline before any
model call (:func:`preflight`), and judges red and green per test case
(:func:`red_gate`, :func:`green_gate`) from the runner's structured report. See
``docs/repositories.md``.
"""

from orchestra.repository.changes import (
    ChangedTests,
    changed_tests,
    changed_tests_in,
    function_ranges,
    is_test_file,
    is_test_support,
    touched_lines,
)
from orchestra.repository.coverage_data import CoverageData
from orchestra.repository.coverage_plan import (
    CoveragePlan,
    changed_line_coverage,
    coverage_plan,
    measure_coverage,
    wrap_python_command,
)
from orchestra.repository.diagnosis import Diagnosis, diagnose, first_error_line
from orchestra.repository.doctor import DoctorReport, run_doctor
from orchestra.repository.environment import (
    TestEnvironment,
    detect_environment,
    prepare_worktree,
    resolve_environment,
    rewrite_pythonpath,
)
from orchestra.repository.errors import EnvironmentNotFound, PreflightFailed, RepositoryError
from orchestra.repository.gate import GateResult, green_gate, implementation_files, red_gate
from orchestra.repository.keys import normalise_key, normalise_remote, repository_keys
from orchestra.repository.planned import PlannedCode, planned_code
from orchestra.repository.preflight import Baseline, environment_fingerprint, preflight
from orchestra.repository.reports import CaseResult, TestReport
from orchestra.repository.runner import collect_test_ids, command_limits, run_test_suite
from orchestra.repository.verdict import (
    CaseVerdict,
    Problem,
    judge_green_cases,
    judge_red_cases,
    missing_behaviour,
)

__all__ = [
    "Baseline",
    "CaseResult",
    "CaseVerdict",
    "ChangedTests",
    "CoverageData",
    "CoveragePlan",
    "Diagnosis",
    "DoctorReport",
    "EnvironmentNotFound",
    "GateResult",
    "PlannedCode",
    "PreflightFailed",
    "Problem",
    "RepositoryError",
    "TestEnvironment",
    "TestReport",
    "changed_line_coverage",
    "changed_tests",
    "changed_tests_in",
    "collect_test_ids",
    "command_limits",
    "coverage_plan",
    "detect_environment",
    "diagnose",
    "environment_fingerprint",
    "first_error_line",
    "function_ranges",
    "green_gate",
    "implementation_files",
    "is_test_file",
    "is_test_support",
    "judge_green_cases",
    "judge_red_cases",
    "measure_coverage",
    "missing_behaviour",
    "normalise_key",
    "normalise_remote",
    "planned_code",
    "preflight",
    "prepare_worktree",
    "red_gate",
    "repository_keys",
    "resolve_environment",
    "rewrite_pythonpath",
    "run_doctor",
    "run_test_suite",
    "touched_lines",
    "wrap_python_command",
]
