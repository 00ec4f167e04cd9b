"""Running commands for agents and gates: timeout, memory limit, no network, clean env.

What is enforced, exactly (see ``docs/engine.md``):

* the working directory is the run's worktree;
* a wall-clock timeout, after which the whole process group gets SIGKILL;
* ``RLIMIT_AS`` (address space; ``RLIMIT_DATA`` when the limits say so, for Node: V8
  reserves tens of GiB of address space for WebAssembly that it never uses) and no core
  dumps, applied by util-linux ``prlimit``
  exec'ing the command (so ``subprocess`` spawns without a Python ``preexec_fn``: no
  Python-level fork in a process where libraries such as lancedb hook ``fork``); where
  ``prlimit`` is missing, set in the forked child before ``exec`` instead;
* an environment rebuilt from scratch (see :func:`scrubbed_environment`): ``PATH``,
  ``HOME`` (a folder inside the run), locale and a few Python settings — never the
  parent's credentials. Only the variables named in :data:`PASSED_THROUGH` and in the
  caller's ``pass_env`` (``repositories.pass_env`` and a repository's own ``pass_env`` in
  ``orchestra.yaml``) are copied from Orchestra's environment; the repository's
  environment (its virtualenv's ``bin`` first on ``PATH``, ``VIRTUAL_ENV``, a
  ``PYTHONPATH`` that puts the worktree first and keeps the user's own entries) comes in
  through ``env_extra``, built by :mod:`orchestra.repository`;
* no network when ``unshare -rn`` works on this machine (an empty network namespace
  entered as an unprivileged user); where it does not, commands run with the network and
  :func:`network_isolation_available` says so.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PASSED_THROUGH: tuple[str, ...] = ("TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")
"""Variables always copied from Orchestra's environment when set: none carries a secret."""

OUTPUT_LIMIT = 200_000
"""Characters of output kept per stream; the rest is cut (and said to be cut)."""


@dataclass(frozen=True)
class CommandLimits:
    """Limits applied to one command."""

    timeout_s: float = 120.0
    memory_mb: int = 2048
    isolate_network: bool = True
    memory_kind: Literal["address_space", "data"] = "address_space"
    """What ``memory_mb`` bounds: the address space (``RLIMIT_AS``), or only the memory a
    process writes to (``RLIMIT_DATA``: heap and private writable mappings). Node needs
    the second: V8 reserves about 10 GiB of inaccessible address space per WebAssembly
    memory (its bounds checks), so any address-space limit a machine can honour stops
    WebAssembly (``WebAssembly.instantiate(): Out of memory``), which test runners,
    linters and bundlers load."""


@dataclass(frozen=True)
class CommandResult:
    """What a command did."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool
    network_isolated: bool

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def combined(self, limit: int = 12_000) -> str:
        """Stdout then stderr, keeping the end (where test summaries are) when too long."""
        text = self.stdout + ("\n" + self.stderr if self.stderr.strip() else "")
        if self.timed_out:
            text += "\n[orchestra: command timed out and its process group was killed]"
        if len(text) > limit:
            text = "[... output cut ...]\n" + text[-limit:]
        return text


@functools.cache
def network_isolation_available() -> bool:
    """Whether ``unshare -rn`` can create an empty network namespace here."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return False
    try:
        probe = subprocess.run(
            [unshare, "-rn", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def scrubbed_environment(
    home: Path,
    extra: Mapping[str, str] | None = None,
    pass_env: Sequence[str] = (),
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A minimal environment: nothing inherited that could carry a credential.

    Exactly these variables are set: ``PATH`` (Orchestra's interpreter folder, then the
    system folders), ``HOME``, ``LANG``/``LC_ALL`` (``C.UTF-8``),
    ``PYTHONDONTWRITEBYTECODE``, ``PYTHONHASHSEED=0``, ``PYTHONUNBUFFERED``,
    ``GIT_TERMINAL_PROMPT=0`` and ``NO_COLOR``. Then the variables of
    :data:`PASSED_THROUGH` and ``pass_env`` that are set in ``source`` (default: this
    process's environment) are copied; then ``extra`` is applied, so an explicit value wins.
    """
    python_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join([python_bin, "/usr/local/bin", "/usr/bin", "/bin"])
    env = {
        "PATH": path,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONUNBUFFERED": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "NO_COLOR": "1",
    }
    inherited = os.environ if source is None else source
    for name in (*PASSED_THROUGH, *pass_env):
        if name in inherited:
            env[name] = inherited[name]
    if extra:
        env.update(extra)
    return env


@functools.cache
def _prlimit() -> str | None:
    """util-linux ``prlimit``, if it is installed and works here."""
    path = shutil.which("prlimit")
    if path is None or not sys.platform.startswith("linux"):
        return None
    try:
        probe = subprocess.run(
            [path, "--core=0", "--", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if probe.returncode == 0 else None


def limited_argv(argv: Sequence[str], limits: CommandLimits, isolated: bool) -> list[str]:
    """``argv`` wrapped in the limit and namespace helpers that exec it.

    ``prlimit`` sets the limits and execs the rest, which is why no ``preexec_fn`` is
    needed (see :func:`run_command`). The limit applies to ``unshare`` and, through exec,
    to the command itself.
    """
    full = list(argv)
    if isolated:
        full = ["unshare", "-rn", "--", *full]
    prlimit = _prlimit()
    if prlimit is not None:
        limit = limits.memory_mb * 1024 * 1024
        option = "--as" if limits.memory_kind == "address_space" else "--data"
        full = [prlimit, f"{option}={limit}", "--core=0", "--", *full]
    return full


def _limit_memory(memory_mb: int, kind: str) -> None:
    """Runs in the child between fork and exec (only where ``prlimit`` is missing)."""
    limit = memory_mb * 1024 * 1024
    which = resource.RLIMIT_AS if kind == "address_space" else resource.RLIMIT_DATA
    resource.setrlimit(which, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _cut(text: str) -> str:
    if len(text) <= OUTPUT_LIMIT:
        return text
    return text[:OUTPUT_LIMIT] + "\n[... output cut ...]"


def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    home: Path,
    limits: CommandLimits,
    env_extra: Mapping[str, str] | None = None,
    pass_env: Sequence[str] = (),
) -> CommandResult:
    """Run ``argv`` in ``cwd`` under ``limits`` and return its output and exit code.

    The environment is :func:`scrubbed_environment` with ``pass_env`` copied from this
    process and ``env_extra`` on top.
    """
    isolated = limits.isolate_network and network_isolation_available()
    env = scrubbed_environment(home, env_extra, pass_env)
    # The wrappers exec the command themselves, so a missing one would otherwise show up
    # as their error message; look it up on the command's own PATH first.
    if shutil.which(argv[0], path=env["PATH"]) is None and not (cwd / argv[0]).is_file():
        return CommandResult(
            tuple(argv), 127, "", f"command not found: {argv[0]}", 0.0, False, isolated
        )
    full = limited_argv(argv, limits, isolated)
    # A preexec_fn makes subprocess fork through Python's at-fork hooks (lancedb warns
    # there, once per command); with prlimit the child needs no Python code at all.
    preexec = (
        None
        if _prlimit()
        else functools.partial(_limit_memory, limits.memory_mb, limits.memory_kind)
    )
    home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(
            full,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
            preexec_fn=preexec,
        )
    except FileNotFoundError:
        return CommandResult(
            tuple(argv), 127, "", f"command not found: {argv[0]}", 0.0, False, isolated
        )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return CommandResult(
        argv=tuple(argv),
        exit_code=proc.returncode if not timed_out else -signal.SIGKILL,
        stdout=_cut(out),
        stderr=_cut(err),
        duration_s=time.perf_counter() - started,
        timed_out=timed_out,
        network_isolated=isolated,
    )
