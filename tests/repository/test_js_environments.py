"""JS/TS packages as real ones are set up (found replaying unjs/defu and fastify packages):
scripts calling scripts, pnpm, dependencies not installed yet, WebAssembly, vitest's own
coverage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestra.repository import PreflightFailed, coverage_plan, detect_environment, preflight
from orchestra.repository.runner import build_invocation
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits

NODE_TEST = (
    "const test = require('node:test');\nconst assert = require('node:assert');\n\n"
    "test('adds', () => { assert.strictEqual(1 + 1, 2); });\n"
)


def _package(path: Path, scripts: dict[str, str], **extra: object) -> Path:
    package = {"name": "pkg", "version": "1.0.0", "scripts": scripts, **extra}
    return create_repository(
        path, {"package.json": json.dumps(package), "test/a.test.js": NODE_TEST}
    )


@pytest.mark.parametrize(
    ("scripts", "runner"),
    [
        (
            {"test": "npm run test:unit && npm run lint", "test:unit": "c8 --100 node --test"},
            "node",
        ),
        (
            {"test": "pnpm lint && pnpm test:unit", "lint": "eslint", "test:unit": "vitest"},
            "vitest",
        ),
        ({"test": "yarn run unit", "unit": "jest --coverage"}, "jest"),
        ({"test": "npm run a", "a": "npm run b", "b": "npm run a"}, "unknown"),
        ({"test": "bnt --coverage 100"}, "node"),
        ({"test": "tsx --test test/*.ts"}, "node"),
    ],
)
def test_the_runner_is_read_through_the_scripts_the_test_script_calls(
    tmp_path: Path, scripts: dict[str, str], runner: str
) -> None:
    repo = _package(tmp_path / "p", scripts)
    assert detect_environment(repo, environ={}).runner == runner


def test_the_doctor_names_the_lockfile_it_found_or_none(tmp_path: Path) -> None:
    for lockfile, manager in (
        ("pnpm-lock.yaml", "pnpm"),
        ("yarn.lock", "yarn"),
        ("package-lock.json", "npm"),
        (None, "npm"),
    ):
        repo = _package(tmp_path / (lockfile or "none"), {"test": "node --test"})
        if lockfile:
            (repo / lockfile).write_text("")
        source = detect_environment(repo, environ={}).source
        assert source == f"package.json ({manager}; lockfile: {lockfile or 'none'})"


def test_pnpm_and_yarn_pass_runner_options_on_without_a_separator(tmp_path: Path) -> None:
    """pnpm and yarn hand a ``--`` to the script, and vitest then reads the options after it
    as file filters: no report (seen with unjs/defu's ``pnpm test``)."""
    for lockfile, manager in (("pnpm-lock.yaml", "pnpm"), ("yarn.lock", "yarn"), (None, "npm")):
        repo = _package(tmp_path / manager, {"test": "vitest run"})
        if lockfile:
            (repo / lockfile).write_text("")
        env = detect_environment(repo, environ={})
        argv = build_invocation(env, repo, tmp_path / "rep", "t").argv
        assert argv[:2] == (manager, "test")
        assert (argv[2] == "--") is (manager == "npm"), argv
        assert "--reporter=junit" in argv


def test_vitest_coverage_uses_vitests_own_v8_provider_when_installed(tmp_path: Path) -> None:
    repo = _package(tmp_path / "p", {"test": "vitest run"})
    (repo / "pnpm-lock.yaml").write_text("")
    env = detect_environment(repo, environ={})
    assert coverage_plan(env, tmp_path / "cov").tool is None
    (repo / "node_modules" / "@vitest" / "coverage-v8").mkdir(parents=True)
    plan = coverage_plan(env, tmp_path / "cov")
    assert plan.tool == "vitest (v8)"
    assert plan.command is not None
    assert plan.command[:2] == ("pnpm", "test") and "--" not in plan.command
    assert "--coverage.reporter=json" in plan.command
    assert plan.output == tmp_path / "cov" / "vitest" / "coverage-final.json"


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")
def test_dependencies_not_installed_say_which_install_command_to_run(tmp_path: Path) -> None:
    repo = _package(tmp_path / "p", {"test": "c8 node --test"}, devDependencies={"c8": "^10.0.0"})
    (repo / "package-lock.json").write_text("{}")
    from orchestra.tools import git

    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lock")
    env = detect_environment(repo, environ={})
    with pytest.raises(PreflightFailed) as failed:
        preflight(
            env,
            repo,
            home=tmp_path / "h",
            limits=CommandLimits(timeout_s=120),
            report_dir=tmp_path / "rep",
        )
    assert "c8: not found" in failed.value.message
    assert "dependencies are not installed" in (failed.value.hint or "")
    assert "`npm ci`" in (failed.value.hint or "")


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")
def test_a_test_using_webassembly_runs_under_the_default_memory_limit(tmp_path: Path) -> None:
    wasm = (
        "const test = require('node:test');\n\n"
        "test('wasm', () => { new WebAssembly.Memory({ initial: 1 }); });\n"
    )
    repo = create_repository(
        tmp_path / "p",
        {
            "package.json": json.dumps({"name": "w", "scripts": {"test": "node --test"}}),
            "test/w.test.js": wasm,
        },
    )
    env = detect_environment(repo, environ={})
    baseline = preflight(
        env, repo, home=tmp_path / "h", limits=CommandLimits(), report_dir=tmp_path / "rep"
    )
    assert baseline.counts["passed"] == 1
