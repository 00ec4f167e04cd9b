"""The environment a repository's tests run in, and the command that runs them.

:func:`resolve_environment` answers, for one repository: which command runs its tests,
in which environment (its virtualenv, uv, Poetry, Hatch, tox/nox, npm/pnpm/yarn, go,
cargo, Maven/Gradle), and with which variables, so that the tests import the *worktree's*
code. Settings in ``orchestra.yaml`` (``repositories.overrides``, keyed by path or remote
URL) always win over detection.

Why ``PYTHONPATH`` and not an install: a virtualenv lives in the user's checkout (it is
git-ignored, so a run's worktree has none) and often holds an editable install of the
checkout itself. Folders on ``PYTHONPATH`` come before site-packages, ``.pth`` entries
and setuptools' editable finders, so the worktree's ``src/`` (or root) wins.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestra.config import OrchestraConfig, RepositoriesSection, RepositorySettings
from orchestra.repository.errors import EnvironmentNotFound
from orchestra.repository.keys import normalise_key, repository_keys
from orchestra.repository.manifests import javascript_runner, read_package_json, read_pyproject
from orchestra.tools import scrubbed_environment

PYTEST_ARGS: tuple[str, ...] = ("-q", "-p", "no:cacheprovider")
"""Arguments every detected pytest command gets (no cache folder in the worktree)."""

LANGUAGE_PASS_ENV: dict[str, tuple[str, ...]] = {
    "go": ("GOPATH", "GOMODCACHE", "GOROOT", "GOFLAGS", "GOPROXY"),
    "rust": ("CARGO_HOME", "RUSTUP_HOME"),
    "java": ("JAVA_HOME", "MAVEN_HOME", "GRADLE_USER_HOME"),
    "javascript": ("NODE_PATH",),
}
"""Toolchain locations copied from Orchestra's environment, per language."""

Which = Callable[[str], str | None]
Probe = Callable[[list[str], Path], str | None]


@dataclass(frozen=True)
class TestEnvironment:
    """How one repository's tests run: command, environment and where that was decided."""

    __test__ = False  # not a pytest test class

    repository: Path
    """The user's checkout (resolved); virtualenvs and ``node_modules`` live there."""
    kind: str
    """``venv``, ``uv``, ``poetry``, ``hatch``, ``tox``, ``nox``, ``npm``, ``pnpm``,
    ``yarn``, ``go``, ``cargo``, ``maven``, ``gradle`` or ``system``."""
    language: str
    """``python``, ``javascript``, ``go``, ``rust``, ``java`` or ``unknown``."""
    runner: str
    """The test runner: ``pytest``, ``vitest``, ``jest``, ``node``, ``go``, ``cargo``,
    ``maven``, ``gradle`` or ``unknown``; structured reports depend on it."""
    command: tuple[str, ...]
    """The test command; the engine appends test paths."""
    source: str
    """Why this command: the file or setting it was decided from."""
    interpreter: str | None = None
    """The Python interpreter of the environment, when known."""
    virtual_env: str | None = None
    """The virtualenv (absolute), exported as ``VIRTUAL_ENV`` with its ``bin`` on ``PATH``."""
    python_path: tuple[str, ...] = ()
    """Folders relative to the worktree put first on ``PYTHONPATH``."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Fixed variables set for every command."""
    pass_env: tuple[str, ...] = ()
    """Variables copied from Orchestra's environment (on top of the sandbox's list)."""
    keep_pythonpath: bool = True
    """Keep the user's ``PYTHONPATH`` after the worktree's folders."""
    explicit: bool = False
    """The command comes from the configuration, not from detection."""
    preexisting_failures: bool = False
    """Tests failing at the base may be recorded and left out of the gates."""
    coverage_command: tuple[str, ...] | None = None
    """Configured coverage command, if any."""
    notes: tuple[str, ...] = ()
    """Warnings and advice for ``orchestra doctor``."""

    def describe(self) -> str:
        """One line: the command and where it came from."""
        return f"{' '.join(self.command)}  ({self.kind}; {self.source})"

    def sandbox_env(
        self, worktree: Path, inherited: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The variables to give the sandbox (``env_extra``) for a command in ``worktree``.

        ``PATH`` starts with the virtualenv's ``bin``; ``PYTHONPATH`` holds the worktree's
        folders first, then (when kept) the user's own entries, each entry that points
        inside the repository rewritten to the same place in the worktree.
        """
        source = os.environ if inherited is None else inherited
        out: dict[str, str] = {}
        base_path = scrubbed_environment(worktree)["PATH"].split(os.pathsep)
        if self.virtual_env:
            # Orchestra's own interpreter must not shadow the repository's.
            own = str(Path(sys.executable).parent)
            rest = [p for p in base_path if p != own]
            out["PATH"] = os.pathsep.join([str(Path(self.virtual_env) / "bin"), *rest])
            out["VIRTUAL_ENV"] = self.virtual_env
        if self.language == "python":
            entries = [
                str(worktree / rel) if rel != "." else str(worktree) for rel in self.python_path
            ]
            if self.keep_pythonpath:
                entries += rewrite_pythonpath(
                    source.get("PYTHONPATH", ""), self.repository, worktree
                )
            unique = list(dict.fromkeys(e for e in entries if e))
            if unique:
                out["PYTHONPATH"] = os.pathsep.join(unique)
        out.update(self.env)
        return out


def rewrite_pythonpath(value: str, repository: Path, worktree: Path) -> list[str]:
    """The user's ``PYTHONPATH`` entries, those inside ``repository`` moved to ``worktree``."""
    out: list[str] = []
    repo = repository.resolve()
    for entry in value.split(os.pathsep):
        if not entry:
            continue
        path = Path(entry).expanduser()
        try:
            rel = path.resolve().relative_to(repo)
        except ValueError:
            out.append(entry)
            continue
        out.append(str(worktree / rel) if str(rel) != "." else str(worktree))
    return out


def settings_for(repo: Path, section: RepositoriesSection) -> tuple[str, RepositorySettings] | None:
    """The configured settings of ``repo`` and the key they were found under, if any."""
    for key in repository_keys(repo):
        for configured, settings in section.overrides.items():
            if normalise_key(configured) == key:
                return configured, settings
    return None


def _which(name: str) -> str | None:
    return shutil.which(name)


def _probe(argv: list[str], cwd: Path) -> str | None:
    """Run a read-only query (``poetry env info -p``) in the user's environment."""
    try:
        proc = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip().splitlines()
    return out[-1].strip() if proc.returncode == 0 and out else None


def python_roots(repo: Path) -> tuple[str, ...]:
    """Folders to import the repository's code from: ``src`` when it exists, then the root."""
    return ("src", ".") if (repo / "src").is_dir() else (".",)


def _venv_python(venv: Path) -> Path | None:
    for name in ("bin/python", "bin/python3", "Scripts/python.exe"):
        if (venv / name).exists():
            return venv / name
    return None


def is_python_project(repo: Path) -> bool:
    """Whether ``repo`` looks like a Python project."""
    markers = ("pyproject.toml", "setup.py", "setup.cfg", "tox.ini", "noxfile.py", "pytest.ini")
    if any((repo / m).is_file() for m in markers):
        return True
    return any(repo.glob("*.py")) or any(repo.glob("test*/**/*.py"))


def _from_venv(repo: Path, venv: Path, kind: str, source: str) -> TestEnvironment | None:
    python = _venv_python(venv)
    if python is None:
        return None
    return TestEnvironment(
        repository=repo,
        kind=kind,
        language="python",
        runner="pytest",
        command=(str(python), "-m", "pytest", *PYTEST_ARGS),
        source=source,
        interpreter=str(python),
        virtual_env=str(venv),
        python_path=python_roots(repo),
    )


def detect_environment(
    repo: Path,
    *,
    environ: Mapping[str, str] | None = None,
    which: Which = _which,
    probe: Probe = _probe,
) -> TestEnvironment:
    """Detect how ``repo``'s tests run, from the files in it (no configuration)."""
    repo = repo.resolve()
    environ = os.environ if environ is None else environ
    if is_python_project(repo) or not _other_language_markers(repo):
        return _detect_python(repo, environ, which, probe)
    return _detect_other(repo, which)


def _other_language_markers(repo: Path) -> bool:
    names = ("package.json", "go.mod", "Cargo.toml", "pom.xml", "build.gradle", "build.gradle.kts")
    return any((repo / n).is_file() for n in names)


def _detect_python(
    repo: Path, environ: Mapping[str, str], which: Which, probe: Probe
) -> TestEnvironment:
    pyproject = read_pyproject(repo)
    tool = pyproject.get("tool", {}) if isinstance(pyproject.get("tool"), dict) else {}
    for name in (".venv", "venv"):
        found = _from_venv(repo, repo / name, "venv", f"virtualenv {name}/ in the repository")
        if found is not None:
            if (repo / "uv.lock").is_file():
                found = replace(found, kind="uv", source=f"uv.lock, environment {name}/")
            elif (repo / "poetry.lock").is_file():
                found = replace(found, kind="poetry", source=f"poetry.lock, environment {name}/")
            return found
    if (repo / "uv.lock").is_file() or "uv" in tool:
        return _tool_env(
            repo,
            "uv",
            ("uv", "run", "--frozen", "python", "-m", "pytest", *PYTEST_ARGS),
            "uv.lock",
            which,
            "run `uv sync` once in the repository: the sandbox has no network to create "
            "the environment",
            env={"UV_PROJECT_ENVIRONMENT": str(repo / ".venv"), "UV_OFFLINE": "1"},
        )
    hatch_table = tool.get("hatch")
    hatch: dict[str, object] = hatch_table if isinstance(hatch_table, dict) else {}
    managers = (
        (
            "poetry",
            (repo / "poetry.lock").is_file() or "poetry" in tool,
            ["poetry", "env", "info", "-p"],
            "poetry.lock",
            "run `poetry install` once in the repository",
        ),
        (
            "hatch",
            "envs" in hatch or (repo / "hatch.toml").is_file(),
            ["hatch", "env", "find", "default"],
            "Hatch configuration",
            "run `hatch env create` once in the repository",
        ),
    )
    for kind, present, query, source, advice in managers:
        if not present:
            continue
        if which(kind):
            path = probe(query, repo)
            if path and (venv := _from_venv(repo, Path(path), kind, f"{source}: {path}")):
                return venv
        command = (kind, "run", "python", "-m", "pytest", *PYTEST_ARGS)
        return _tool_env(repo, kind, command, source, which, advice)
    for kind, marker, folder in (("tox", "tox.ini", ".tox"), ("nox", "noxfile.py", ".nox")):
        if (repo / marker).is_file() or (kind == "tox" and "tox" in tool):
            for env_dir in sorted((repo / folder).glob("*")) if (repo / folder).is_dir() else []:
                venv = _from_venv(
                    repo, env_dir, kind, f"{kind} environment {folder}/{env_dir.name}"
                )
                if venv is not None:
                    return venv
            return _tool_env(
                repo,
                kind,
                (kind,),
                marker,
                which,
                f"run `{kind}` once in the repository so its environment exists; Orchestra "
                f"then runs pytest in it directly (the sandbox has no network for {kind})",
                runner="unknown",
            )
    active = environ.get("VIRTUAL_ENV")
    if active and Path(active).resolve() != Path(sys.prefix).resolve():
        venv = _from_venv(repo, Path(active), "venv", "the activated virtualenv (VIRTUAL_ENV)")
        if venv is not None:
            return venv
    return TestEnvironment(
        repository=repo,
        kind="system",
        language="python",
        runner="pytest",
        command=(sys.executable, "-m", "pytest", *PYTEST_ARGS),
        source="no environment found: Orchestra's own interpreter",
        interpreter=sys.executable,
        python_path=python_roots(repo),
        notes=(
            "tests run with Orchestra's own interpreter, which may lack the repository's "
            "dependencies; create a virtualenv in the repository (python -m venv .venv and "
            "install the project with its test dependencies) or set "
            "repositories.overrides.<repository>.venv",
        ),
    )


def _tool_env(
    repo: Path,
    kind: str,
    command: tuple[str, ...],
    source: str,
    which: Which,
    advice: str,
    *,
    env: Mapping[str, str] | None = None,
    runner: str = "pytest",
) -> TestEnvironment:
    notes = [advice]
    if which(command[0]) is None:
        notes.insert(0, f"`{command[0]}` is not on PATH; install it or set a test_command")
    return TestEnvironment(
        repository=repo,
        kind=kind,
        language="python",
        runner=runner,
        command=command,
        source=source,
        python_path=python_roots(repo),
        env=dict(env or {}),
        notes=tuple(notes),
    )


def _detect_other(repo: Path, which: Which) -> TestEnvironment:
    package = read_package_json(repo)
    if package is not None:
        scripts = package.get("scripts") or {}
        script = str(scripts.get("test", ""))
        if (repo / "pnpm-lock.yaml").is_file():
            kind, command, lockfile = "pnpm", ("pnpm", "test"), "pnpm-lock.yaml"
        elif (repo / "yarn.lock").is_file():
            kind, command, lockfile = "yarn", ("yarn", "test"), "yarn.lock"
        else:
            kind, command = "npm", ("npm", "test")
            lockfile = next(
                (n for n in ("package-lock.json", "npm-shrinkwrap.json") if (repo / n).is_file()),
                "none",
            )
        notes: tuple[str, ...] = ()
        if not script or "no test specified" in script:
            notes = ("package.json has no `test` script; add one (e.g. `vitest run`)",)
        return TestEnvironment(
            repository=repo,
            kind=kind,
            language="javascript",
            runner=javascript_runner(script, scripts),
            command=command,
            source=f"package.json ({kind}; lockfile: {lockfile})",
            pass_env=LANGUAGE_PASS_ENV["javascript"],
            notes=notes,
        )
    if (repo / "go.mod").is_file():
        return TestEnvironment(
            repository=repo,
            kind="go",
            language="go",
            runner="go",
            command=("go", "test", "./..."),
            source="go.mod",
            pass_env=LANGUAGE_PASS_ENV["go"],
            env={"GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOTOOLCHAIN": "local"},
        )
    if (repo / "Cargo.toml").is_file():
        nextest = which("cargo-nextest") is not None
        return TestEnvironment(
            repository=repo,
            kind="cargo",
            language="rust",
            runner="nextest" if nextest else "cargo",
            command=("cargo", "nextest", "run") if nextest else ("cargo", "test", "--offline"),
            source="Cargo.toml",
            pass_env=LANGUAGE_PASS_ENV["rust"],
        )
    if (repo / "pom.xml").is_file():
        mvn = "./mvnw" if (repo / "mvnw").is_file() else "mvn"
        return TestEnvironment(
            repository=repo,
            kind="maven",
            language="java",
            runner="maven",
            command=(mvn, "-q", "-o", "test"),
            source="pom.xml",
            pass_env=LANGUAGE_PASS_ENV["java"],
        )
    gradle = "./gradlew" if (repo / "gradlew").is_file() else "gradle"
    return TestEnvironment(
        repository=repo,
        kind="gradle",
        language="java",
        runner="gradle",
        command=(gradle, "test", "--offline"),
        source="build.gradle",
        pass_env=LANGUAGE_PASS_ENV["java"],
    )


def resolve_environment(
    repo: Path,
    config: OrchestraConfig | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    which: Which = _which,
    probe: Probe = _probe,
) -> TestEnvironment:
    """The environment ``repo``'s tests run in: configured settings first, then detection.

    Order: ``repositories.overrides`` for this repository (by path or remote URL); the
    legacy ``engine.repositories`` entry (keyed by folder name) and an explicitly set
    ``engine.test_command``; then :func:`detect_environment`.
    """
    repo = repo.resolve()
    config = config or OrchestraConfig()
    section = config.repositories
    found = settings_for(repo, section)
    settings = found[1] if found else RepositorySettings()
    detected: TestEnvironment
    if settings.venv:
        venv = Path(settings.venv).expanduser()
        venv = venv if venv.is_absolute() else repo / venv
        from_venv = _from_venv(repo, venv, "venv", f"configured venv {settings.venv}")
        if from_venv is None:
            raise EnvironmentNotFound(
                f"the configured virtualenv {venv} has no Python interpreter",
                hint=f"create it (python -m venv {venv}) or fix repositories.overrides"
                f"[{found[0] if found else repo}].venv",
            )
        detected = from_venv
    else:
        detected = detect_environment(repo, environ=environ, which=which, probe=probe)
    if settings.environment and settings.environment != detected.kind:
        detected = replace(
            detected,
            kind=settings.environment,
            source=f"configured environment {settings.environment}",
        )
    command = _explicit_command(repo, config, settings)
    if command is not None:
        detected = replace(
            detected,
            command=tuple(command[0]),
            source=command[1],
            runner=_runner_of(command[0], detected.runner),
            explicit=True,
            notes=(),
        )
    if settings.python_path is not None:
        detected = replace(detected, python_path=tuple(settings.python_path))
    return replace(
        detected,
        env={**detected.env, **settings.env},
        pass_env=tuple(dict.fromkeys((*detected.pass_env, *section.pass_env, *settings.pass_env))),
        keep_pythonpath=settings.keep_pythonpath,
        preexisting_failures=settings.preexisting_failures,
        coverage_command=tuple(settings.coverage_command) if settings.coverage_command else None,
    )


def _explicit_command(
    repo: Path, config: OrchestraConfig, settings: RepositorySettings
) -> tuple[list[str], str] | None:
    if settings.test_command:
        return list(settings.test_command), "repositories.overrides test_command"
    legacy = config.engine.repositories.get(repo.name)
    if legacy and legacy.test_command:
        return list(legacy.test_command), f"engine.repositories.{repo.name}.test_command"
    if "test_command" in config.engine.model_fields_set:
        return list(config.engine.test_command), "engine.test_command"
    return None


def _runner_of(command: list[str], fallback: str) -> str:
    joined = " ".join(command)
    for needle, runner in (
        ("pytest", "pytest"),
        ("vitest", "vitest"),
        ("jest", "jest"),
        ("go test", "go"),
        ("nextest", "nextest"),
        ("cargo test", "cargo"),
    ):
        if needle in joined:
            return runner
    return fallback


def prepare_worktree(env: TestEnvironment, worktree: Path) -> list[str]:
    """Make the checkout's installed dependencies visible in a run's worktree.

    JS/TS: ``node_modules`` is git-ignored, so a fresh worktree has none. A real
    ``node_modules`` folder is created whose entries link to the checkout's (a folder, so
    the usual ``node_modules/`` ignore rule still hides it); Node resolves the links to the
    checkout, where the packages' own dependencies are. Returns what was created.
    """
    source = env.repository / "node_modules"
    target = worktree / "node_modules"
    if env.language != "javascript" or not source.is_dir() or target.exists():
        return []
    if worktree.resolve() == env.repository.resolve():
        return []
    target.mkdir()
    for entry in sorted(source.iterdir()):
        (target / entry.name).symlink_to(entry)
    return ["node_modules"]
