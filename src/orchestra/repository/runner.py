"""Running a repository's tests in its environment, with a structured report.

The report options go where every command form passes them on: pytest's through
``PYTEST_ADDOPTS`` (so ``sh -c``, ``env``, ``uv run``, ``tox`` wrappers keep working),
vitest's and jest's as arguments (after ``--`` for npm; pnpm and yarn pass them on as they
are), jest-junit's settings through its variables, ``node --test``'s through
``NODE_OPTIONS`` and Go's ``-json`` flag after ``go test``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from orchestra.repository.changes import parse_collected_ids
from orchestra.repository.environment import TestEnvironment
from orchestra.repository.reports import (
    JEST_JUNIT_ENV,
    TestReport,
    parse_go_test_json,
    parse_jest_junit,
    parse_junit,
    parse_pytest_junit,
)
from orchestra.tools import CommandLimits, CommandResult, run_command

REPORTING_RUNNERS = frozenset({"pytest", "vitest", "jest", "node", "go"})
"""Runners whose structured report Orchestra asks for and reads."""

OUTPUT_KEPT = 8000
"""Characters of a run's output kept in its report (the end)."""


@dataclass(frozen=True)
class TestInvocation:
    """One test command ready to run: argv, extra variables, and where its report lands."""

    __test__ = False  # not a pytest test class

    argv: tuple[str, ...]
    env: dict[str, str]
    report: Path | None
    """The JUnit file the runner writes; ``None`` when the report is on stdout (Go)."""


_PYTEST_CONFIGS = (
    ("pytest.ini", ""),
    (".pytest.ini", ""),
    ("pyproject.toml", "[tool.pytest"),
    ("tox.ini", "[pytest]"),
    ("setup.cfg", "[tool:pytest]"),
)
"""pytest's configuration files, and the section that makes one count (``""``: any)."""


def _own_configuration(worktree: Path) -> list[str]:
    """pytest options that confine it to the repository's own configuration.

    Ids stay relative to the repository whatever pytest configuration lies above it (the
    demo's sample repository sits inside Orchestra's own checkout), and a configuration
    above the repository never applies: without one of its own, pytest would take the
    enclosing project's (options of plugins not installed here, warnings as errors) and
    refuse to start.
    """
    own = any(
        (worktree / name).is_file()
        and section in (worktree / name).read_text(encoding="utf-8", errors="replace")
        for name, section in _PYTEST_CONFIGS
    )
    return [f"--rootdir={worktree}", *([] if own else ["-c", os.devnull])]


def command_limits(env: TestEnvironment, limits: CommandLimits) -> CommandLimits:
    """``limits`` as they apply to ``env``'s commands.

    Node's memory is bounded by what it writes (``RLIMIT_DATA``), not by its address
    space: V8 reserves about 10 GiB of address space per WebAssembly memory, so the usual
    address-space limit stops every tool that loads WebAssembly (vitest's and eslint's
    dependencies do) with ``WebAssembly.instantiate(): Out of memory``.
    """
    if env.language == "javascript":
        return replace(limits, memory_kind="data")
    return limits


def script_separator(command: Sequence[str]) -> list[str]:
    """What goes between a package manager's script and the runner's options: npm needs
    ``--`` (it would read them itself); pnpm and yarn pass arguments on as they are, and
    a ``--`` would reach the runner, which takes what follows as file filters."""
    if command and Path(command[0]).name == "npm" and "--" not in command:
        return ["--"]
    return []


def build_invocation(
    env: TestEnvironment,
    worktree: Path,
    report_dir: Path,
    name: str,
    paths: Sequence[str] = (),
    extra_args: Sequence[str] = (),
) -> TestInvocation:
    """The argv and variables that run ``env``'s tests with a structured report."""
    report = report_dir / f"{name}.xml"
    variables = env.sandbox_env(worktree)
    argv = [*env.command]
    if env.runner == "pytest":
        addopts = [
            *_own_configuration(worktree),
            f"--junitxml={report}",
            "-o",
            "junit_family=xunit1",
            "--continue-on-collection-errors",
            *extra_args,
        ]
        variables["PYTEST_ADDOPTS"] = shlex.join(addopts)
        return TestInvocation((*argv, *paths), variables, report)
    if env.runner in {"vitest", "jest"}:
        if env.runner == "vitest":
            options = ["--reporter=default", "--reporter=junit", f"--outputFile.junit={report}"]
        else:
            options = ["--ci", "--reporters=default", "--reporters=jest-junit"]
            variables.update(JEST_JUNIT_ENV)
            variables["JEST_JUNIT_OUTPUT_FILE"] = str(report)
        return TestInvocation((*argv, *script_separator(argv), *options, *paths), variables, report)
    if env.runner == "node":
        variables["NODE_OPTIONS"] = (
            "--test-reporter=spec --test-reporter-destination=stdout "
            f"--test-reporter=junit --test-reporter-destination={report}"
        )
        return TestInvocation((*argv, *paths), variables, report)
    if env.runner == "go":
        if "-json" not in argv and "test" in argv:
            at = argv.index("test") + 1
            argv = [*argv[:at], "-json", *argv[at:]]
        return TestInvocation((*argv, *extra_args, *paths), variables, None)
    return TestInvocation((*argv, *paths), variables, None)


def read_report(
    env: TestEnvironment, invocation: TestInvocation, result: CommandResult
) -> TestReport:
    """The structured report of a finished run (``structured=False`` when there is none)."""
    report = TestReport(
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        output=result.combined(OUTPUT_KEPT),
        structured=False,
    )
    try:
        if env.runner == "go":
            report.cases = parse_go_test_json(result.stdout, result.stderr)
            report.structured = bool(report.cases) or result.exit_code == 0
        elif invocation.report is not None and invocation.report.is_file():
            text = invocation.report.read_text(encoding="utf-8", errors="replace")
            parse = {"pytest": parse_pytest_junit, "jest": parse_jest_junit}.get(
                env.runner, parse_junit
            )
            report.cases = parse(text)
            report.structured = True
    except ValueError:  # ET.ParseError is a ValueError: a half-written report
        report.structured = False
    return report


def run_test_suite(
    env: TestEnvironment,
    worktree: Path,
    *,
    home: Path,
    limits: CommandLimits,
    report_dir: Path,
    name: str = "tests",
    paths: Sequence[str] = (),
) -> TestReport:
    """Run the tests (all, or ``paths``) in ``worktree`` and read their structured report."""
    report_dir.mkdir(parents=True, exist_ok=True)
    invocation = build_invocation(env, worktree, report_dir, name, paths)
    if invocation.report is not None:
        invocation.report.unlink(missing_ok=True)
    result = run_command(
        list(invocation.argv),
        cwd=worktree,
        home=home,
        limits=command_limits(env, limits),
        env_extra=invocation.env,
        pass_env=env.pass_env,
    )
    return read_report(env, invocation, result)


@dataclass(frozen=True)
class Collection:
    """The test ids a runner collects, or the output explaining why it could not."""

    ids: frozenset[str]
    ok: bool
    exit_code: int
    output: str


_COLLECT_PLUGIN = """import os


def pytest_collection_finish(session):
    with open(os.environ["ORCHESTRA_COLLECTED"], "w", encoding="utf-8") as out:
        for item in session.items:
            out.write(item.nodeid + "\\n")
"""


def collect_test_ids(
    env: TestEnvironment, worktree: Path, *, home: Path, limits: CommandLimits
) -> Collection | None:
    """The test ids collected in ``worktree`` (pytest only; ``None`` for other runners).

    A ten-line plugin writes the collected node ids to a file, so the result does not
    depend on the command's ``-q``/``-v`` flags or on pytest's console format.
    """
    if env.runner != "pytest":
        return None
    plugin_dir = home / "orchestra-pytest-plugin"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    (plugin_dir / "orchestra_collect.py").write_text(_COLLECT_PLUGIN, encoding="utf-8")
    out = plugin_dir / "collected.txt"
    out.unlink(missing_ok=True)
    variables = env.sandbox_env(worktree)
    path = variables.get("PYTHONPATH", "")
    variables["PYTHONPATH"] = f"{path}{os.pathsep}{plugin_dir}" if path else str(plugin_dir)
    variables["PYTEST_ADDOPTS"] = shlex.join(
        [*_own_configuration(worktree), "--collect-only", "-p", "orchestra_collect"]
    )
    variables["ORCHESTRA_COLLECTED"] = str(out)
    result = run_command(
        list(env.command),
        cwd=worktree,
        home=home,
        limits=limits,
        env_extra=variables,
        pass_env=env.pass_env,
    )
    ok = result.exit_code in (0, 5) and not result.timed_out
    if out.is_file():
        ids = frozenset(line for line in out.read_text(encoding="utf-8").splitlines() if line)
    else:
        ids = parse_collected_ids(result.stdout)
    return Collection(ids, ok, result.exit_code, result.combined(OUTPUT_KEPT))
