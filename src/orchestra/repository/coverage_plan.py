"""How coverage is measured: in the tests' own environment, with the tests' own command.

Python: coverage.py wraps the pytest (or unittest) invocation wherever it is in the
command — an interpreter path, ``env A=1 ...``, ``uv run``/``poetry run``, or inside
``sh -c "..."`` — so the same interpreter, options and markers (``-m "not slow"``) run.
JS/TS: ``node --test`` runs with ``NODE_V8_COVERAGE`` (Node's own coverage, the data
c8 reads); vitest with its own V8 coverage when ``@vitest/coverage-v8`` is installed;
vitest and jest under ``c8`` from the repository's ``node_modules``. Go:
``go test -coverprofile``. :mod:`orchestra.repository.coverage_data` reads the data.
Anything else is "not measured", with the reason.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestra.repository.changes import is_test_support, touched_lines
from orchestra.repository.coverage_data import (
    CoverageData,
    read_coverage_json,
    read_go_profile,
    read_istanbul_json,
    read_v8_coverage,
)
from orchestra.repository.environment import TestEnvironment
from orchestra.repository.runner import command_limits, script_separator
from orchestra.tools import CommandLimits, git, run_command

_PYTHON = re.compile(r"^python(?:\d+(?:\.\d+)*)?$")
_PYTEST = {"pytest", "py.test"}
_SHELLS = {"sh", "bash", "dash", "zsh"}
_VITEST_V8 = Path("node_modules", "@vitest", "coverage-v8")
_SHELL_OPERATORS = {"&&", "||", ";", "|", "&", "(", ")"}


@dataclass(frozen=True)
class CoveragePlan:
    """The command that measures coverage, or why coverage is not measured."""

    tool: str | None
    """``coverage.py``, ``c8``, ``go cover``; ``None`` when not measured."""
    command: tuple[str, ...] | None
    report_command: tuple[str, ...] | None = None
    """A second command that writes the report (``coverage json``), when one is needed."""
    env: dict[str, str] = field(default_factory=dict)
    output: Path | None = None
    """The file the measurement ends in (coverage JSON, Go profile, c8 JSON folder)."""
    reason: str = ""
    """How it is measured, or why it is not."""
    interpreter: str | None = None
    """The Python interpreter that must be able to ``import coverage``."""

    @property
    def measured(self) -> bool:
        """Whether a command exists to measure coverage."""
        return self.command is not None


def _python_at(tokens: Sequence[str], i: int) -> int | None:
    """If ``tokens[i]`` is an interpreter running ``-m pytest``/``-m unittest``: index of
    the module name."""
    if not _PYTHON.match(Path(tokens[i]).name):
        return None
    j = i + 1
    while j < len(tokens) and tokens[j].startswith("-") and tokens[j] != "-m":
        j += 2 if tokens[j] in {"-X", "-W"} else 1
    if j + 1 < len(tokens) and tokens[j] == "-m" and tokens[j + 1] in {"pytest", "unittest"}:
        return j + 1
    return None


def wrap_python_command(tokens: Sequence[str]) -> tuple[list[str], str] | None:
    """``tokens`` with coverage.py wrapped around the pytest/unittest run, and the
    interpreter used; ``None`` when no such run is found."""
    items = list(tokens)
    if (
        len(items) >= 3
        and Path(items[0]).name in _SHELLS
        and items[1] in {"-c", "-lc", "-ec", "-ce"}
    ):
        lexer = shlex.shlex(items[2], posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        inner = list(lexer)
        wrapped = wrap_python_command(inner)
        if wrapped is None:
            return None
        script = " ".join(t if t in _SHELL_OPERATORS else shlex.quote(t) for t in wrapped[0])
        return [*items[:2], script, *items[3:]], wrapped[1]
    for i, token in enumerate(items):
        module_at = _python_at(items, i)
        if module_at is not None:
            out = [*items[:module_at], "coverage", "run", "-m", *items[module_at:]]
            return out, token
        name = Path(token).name
        if name in _PYTEST:
            python = str(Path(token).with_name("python")) if "/" in token else "python"
            return [
                *items[:i],
                python,
                "-m",
                "coverage",
                "run",
                "-m",
                "pytest",
                *items[i + 1 :],
            ], python
        if name == "coverage":
            return None  # already measured by the command itself
    return None


def coverage_plan(env: TestEnvironment, data_dir: Path) -> CoveragePlan:
    """How ``env``'s coverage is measured, writing its data under ``data_dir``."""
    if env.coverage_command:
        return CoveragePlan(
            "configured",
            env.coverage_command,
            reason="repositories.overrides coverage_command",
        )
    if env.language == "python":
        return _python_plan(env, data_dir)
    if env.language == "go" and "test" in env.command:
        profile = data_dir / "cover.out"
        at = env.command.index("test") + 1
        command = (*env.command[:at], f"-coverprofile={profile}", *env.command[at:])
        return CoveragePlan("go cover", command, output=profile, reason="go test -coverprofile")
    if env.runner == "node":
        folder = data_dir / "v8"
        return CoveragePlan(
            "node (V8)",
            env.command,
            env={"NODE_V8_COVERAGE": str(folder)},
            output=folder,
            reason="node's own V8 coverage (NODE_V8_COVERAGE), read as c8 does",
        )
    if env.runner == "vitest" and (env.repository / _VITEST_V8).is_dir():
        out = data_dir / "vitest"
        options = (
            "--coverage.enabled=true",
            "--coverage.provider=v8",
            "--coverage.reporter=json",
            f"--coverage.reportsDirectory={out}",
        )
        command = (*env.command, *script_separator(env.command), *options)
        return CoveragePlan(
            "vitest (v8)",
            command,
            output=out / "coverage-final.json",
            reason="vitest's own V8 coverage (@vitest/coverage-v8)",
        )
    if env.language == "javascript":
        c8 = env.repository / "node_modules" / ".bin" / "c8"
        if c8.exists():
            out = data_dir / "c8"
            command = (
                str(c8),
                "--reporter=json",
                f"--report-dir={out}",
                f"--temp-directory={out / 'tmp'}",  # not ./coverage in the worktree
                *env.command,
            )
            return CoveragePlan("c8", command, output=out / "coverage-final.json", reason="c8")
        return CoveragePlan(
            None,
            None,
            reason="not measured: c8 is not installed in the repository "
            "(npm install --save-dev c8"
            + (", or @vitest/coverage-v8)" if env.runner == "vitest" else ")"),
        )
    return CoveragePlan(
        None, None, reason=f"not measured: no coverage tool for {env.language} ({env.kind}) yet"
    )


def _python_plan(env: TestEnvironment, data_dir: Path) -> CoveragePlan:
    wrapped = wrap_python_command(env.command)
    if wrapped is None:
        return CoveragePlan(
            None,
            None,
            reason=f"not measured: Orchestra cannot find the pytest run inside "
            f"`{shlex.join(env.command)}`; set repositories.overrides.<repository>."
            "coverage_command",
        )
    command, python = wrapped
    if Path(env.command[0]).name in _SHELLS:
        prefix: list[str] = []
    else:
        at = command.index(python)
        prefix = command[:at]
    out = data_dir / "coverage.json"
    variables = {"COVERAGE_FILE": str(data_dir / ".coverage")}
    report = (*prefix, python, "-m", "coverage", "json", "-q", "-o", str(out))
    interpreter = env.interpreter if python == "python" and env.interpreter else python
    return CoveragePlan(
        "coverage.py",
        tuple(command),
        report,
        variables,
        out,
        f"coverage.py in the tests' environment: {shlex.join(command)}",
        interpreter,
    )


def measure_coverage(
    plan: CoveragePlan,
    env: TestEnvironment,
    worktree: Path,
    *,
    home: Path,
    limits: CommandLimits,
) -> tuple[CoverageData | None, str]:
    """Run ``plan`` in the tests' environment; the data, or ``None`` and the reason."""
    if plan.command is None or plan.output is None:
        return None, plan.reason
    plan.output.parent.mkdir(parents=True, exist_ok=True)
    if plan.output.is_dir():  # no data of an earlier run is read as this one's
        shutil.rmtree(plan.output)
    plan.output.unlink(missing_ok=True)
    variables = {**env.sandbox_env(worktree), **plan.env}
    outputs = []
    for argv in (plan.command, plan.report_command):
        if argv is None:
            continue
        result = run_command(
            list(argv),
            cwd=worktree,
            home=home,
            limits=command_limits(env, limits),
            env_extra=variables,
            pass_env=env.pass_env,
        )
        outputs.append(result)
    if not plan.output.exists():
        detail = " ".join(r.combined(300) for r in outputs)
        return None, f"not measured: {plan.tool} wrote no data ({detail.strip()[:300]})"
    if plan.tool == "coverage.py":
        return read_coverage_json(plan.output), plan.reason
    if plan.tool == "go cover":
        return read_go_profile(plan.output, worktree), plan.reason
    if plan.tool == "node (V8)":
        return read_v8_coverage(plan.output, worktree), plan.reason
    if plan.tool in {"c8", "vitest (v8)"}:
        return read_istanbul_json(plan.output, worktree), plan.reason
    return None, f"not measured: reading {plan.tool} data is not supported yet"


def changed_line_coverage(
    env: TestEnvironment,
    worktree: Path,
    base_commit: str,
    *,
    home: Path,
    limits: CommandLimits,
    data_dir: Path,
    head: str = "HEAD",
) -> dict[str, Any]:
    """Coverage of the implementation lines changed since ``base_commit``, measured in the
    tests' environment with the tests' command.

    The result has the shape run reports use: ``status`` (``measured`` or ``not measured
    (reason)``), ``tool``, ``changed_executable_lines``, ``covered_lines``, ``percent``
    (``None`` when no changed line is executable) and ``files``.
    """
    plan = coverage_plan(env, data_dir)
    data, reason = measure_coverage(plan, env, worktree, home=home, limits=limits)
    if data is None:
        return {
            "status": reason if reason.startswith("not measured") else f"not measured: {reason}"
        }
    diff = git(worktree, "diff", "-U0", "--no-color", base_commit, head)
    files: dict[str, Any] = {}
    total = covered = 0
    for path, touched in sorted(touched_lines(diff).items()):
        if is_test_support(path) or path not in data.executed:
            continue
        executable = data.executed[path] | data.missing.get(path, frozenset())
        relevant = touched.added & executable
        hit = relevant & data.executed[path]
        files[path] = {
            "changed_executable": len(relevant),
            "covered": len(hit),
            "missing": sorted(relevant - hit),
        }
        total += len(relevant)
        covered += len(hit)
    return {
        "status": "measured",
        "tool": plan.tool,
        "changed_executable_lines": total,
        "covered_lines": covered,
        "percent": round(100.0 * covered / total, 1) if total else None,
        "files": files,
    }
