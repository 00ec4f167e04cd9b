"""CLI: ``orchestra claude-code env`` and ``orchestra claude-code install``.

Points Claude Code at the gateway: ``ANTHROPIC_BASE_URL``, the key, and the model name
Claude Code sends for each tier (``ANTHROPIC_DEFAULT_{OPUS,SONNET,HAIKU}_MODEL``). The
gateway resolves those names to tiers and the tiers to models.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestra.cli.output import console, error_console, fail, print_json
from orchestra.config import find_config, load_config
from orchestra.config.schema import OrchestraConfig
from orchestra.errors import OrchestraError

claude_app = typer.Typer(
    name="claude-code",
    help="Use Claude Code through the Orchestra gateway.",
    no_args_is_help=True,
)

TIER_VARIABLES = {
    "opus": "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "sonnet": "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "haiku": "ANTHROPIC_DEFAULT_HAIKU_MODEL",
}

KeyOption = Annotated[
    str | None,
    typer.Option("--key", help="Orchestra API key to use (never printed unless given here)"),
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option("--base-url", help="gateway URL (default: from gateway.host/port)"),
]
BearerOption = Annotated[
    bool,
    typer.Option(
        "--bearer",
        help="send the key as Authorization: Bearer (ANTHROPIC_AUTH_TOKEN) instead of x-api-key",
    ),
]


def _config() -> OrchestraConfig:
    try:
        return load_config(find_config())
    except OrchestraError as exc:
        raise fail(exc) from exc


def gateway_url(config: OrchestraConfig) -> str:
    """The URL Claude Code should use for the configured listen address."""
    host = config.gateway.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - reading config, not binding
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.gateway.port}"


def claude_env(base_url: str, key: str | None = None, *, bearer: bool = False) -> dict[str, str]:
    """The environment Claude Code needs to work through the gateway."""
    env = {"ANTHROPIC_BASE_URL": base_url.rstrip("/")}
    for tier, variable in TIER_VARIABLES.items():
        env[variable] = tier
    if key:
        env["ANTHROPIC_AUTH_TOKEN" if bearer else "ANTHROPIC_API_KEY"] = key
    return env


@claude_app.command("env")
def env_command(
    key: KeyOption = None,
    base_url: BaseUrlOption = None,
    bearer: BearerOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print the exports that point Claude Code at the gateway.

    Use as ``eval "$(orchestra claude-code env --key orc_...)"``."""
    url = base_url or gateway_url(_config())
    env = claude_env(url, key, bearer=bearer)
    if as_json:
        print_json(env)
        return
    for name, value in env.items():
        typer.echo(f"export {name}={shlex.quote(value)}")
    if not key:
        variable = "ANTHROPIC_AUTH_TOKEN" if bearer else "ANTHROPIC_API_KEY"
        typer.echo(f"# and your key: export {variable}=<your orchestra key>")


def _read_settings(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(
            f"{path} is not valid JSON ({exc}); fix or move it, then run install again"
        ) from exc
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} does not hold a JSON object; fix or move it")
    return data


def _write_json(path: Path, data: dict[str, Any], mode: int) -> None:
    """Atomic write with ``mode`` from the first byte (no window where a key is readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def merge_hooks(existing: Any, ours: dict[str, Any]) -> dict[str, Any]:
    """The user's hooks plus ours; an entry already present (equal JSON) is not repeated."""
    merged: dict[str, Any] = dict(existing) if isinstance(existing, dict) else {}
    for event, entries in ours.items():
        current = merged.get(event)
        current = list(current) if isinstance(current, list) else []
        for entry in entries:
            if entry not in current:
                current.append(entry)
        merged[event] = current
    return merged


def _knowledge_hooks() -> dict[str, Any] | None:
    # Imported by name: the knowledge package may be absent from a slim installation.
    try:
        module = importlib.import_module("orchestra.knowledge.hooks")
    except ImportError:
        return None
    hooks: dict[str, Any] = module.claude_code_hooks()
    return hooks


def _pool_roster(developer: str, database: str | None) -> Any:
    """The roster of ``developer``'s pool in the agent registry (warnings on stderr)."""
    from orchestra.config import default_database_url
    from orchestra.org import load_org
    from orchestra.registry import AgentRegistry, UnitPools, UnknownUnit
    from orchestra.store import open_database

    db = open_database(database or default_database_url())
    registry = AgentRegistry(db)
    try:
        tree = load_org(db)
        if tree is None:
            raise UnknownUnit(
                "no organisation is stored, so no developer has a pool",
                hint="run `orchestra org sync`, or install without --developer",
            )
        roster = UnitPools(registry, tree).roster_for(developer)
    finally:
        registry.close()
        db.dispose()
    for warning in roster.warnings:
        error_console().print(f"warning: {warning}", markup=False, highlight=False)
    return roster


@claude_app.command("install")
def install_command(
    directory: Annotated[
        Path, typer.Argument(help="project folder (default: the working folder)")
    ] = Path("."),
    key: KeyOption = None,
    base_url: BaseUrlOption = None,
    bearer: BearerOption = False,
    force: Annotated[
        bool, typer.Option("--force", help="overwrite agent files Orchestra did not write")
    ] = False,
    developer: Annotated[
        str | None,
        typer.Option(
            "--developer",
            envvar="ORCHESTRA_DEVELOPER",
            help="install the agents of this developer's pool in the agent registry "
            "(default: $ORCHESTRA_DEVELOPER; without it, the roster files)",
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option("--database", help="registry database URL (with --developer)"),
    ] = None,
) -> None:
    """Write the roster (or a developer's pool) as Claude Code sub-agents and point the
    project at the gateway."""
    from orchestra.roster import export_claude_code, load_roster

    config = _config()
    project = directory.resolve()
    claude_dir = project / ".claude"
    settings_path = claude_dir / "settings.json"
    local_path = claude_dir / "settings.local.json"
    try:
        settings = _read_settings(settings_path)
        local = _read_settings(local_path) if key else {}
        roster = _pool_roster(developer, database) if developer else load_roster(config=config)
        result = export_claude_code(roster, claude_dir / "agents", config, force=force)
    except OrchestraError as exc:
        raise fail(exc) from exc
    url = base_url or gateway_url(config)
    env = claude_env(url)  # no key here: settings.json is committed
    current_env = settings.get("env")
    settings["env"] = {**(current_env if isinstance(current_env, dict) else {}), **env}
    hooks = _knowledge_hooks()
    if hooks:
        settings["hooks"] = merge_hooks(settings.get("hooks"), hooks)
    _write_json(settings_path, settings, 0o644)
    out = console()
    out.print(
        f"agents: {len(result.written)} written, {len(result.unchanged)} unchanged, "
        f"{len(result.removed)} removed in {result.destination}"
    )
    out.print(f"settings: {settings_path} (gateway {url}, no secrets)")
    if hooks is None:
        out.print("knowledge hooks: not available in this installation; skipped")
    if key:
        local_env = local.get("env")
        variable = "ANTHROPIC_AUTH_TOKEN" if bearer else "ANTHROPIC_API_KEY"
        local["env"] = {**(local_env if isinstance(local_env, dict) else {}), variable: key}
        _write_json(local_path, local, 0o600)
        out.print(f"key: {local_path} (mode 0600; keep it out of version control)")
    else:
        out.print("key: not written; pass --key or export ANTHROPIC_API_KEY yourself")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root application."""
    app.add_typer(claude_app, name="claude-code")
