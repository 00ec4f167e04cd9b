"""``orchestra config check``: every problem in a configuration, located, with its fix.

Schema problems come from Pydantic (see :mod:`.loader`). Once the schema holds, this
module checks what a schema cannot: that names refer to things that exist (tiers to
models, models to providers, team overrides to units, parents to units), that the
organisation tree has no cycles, and that credentials are reachable. Messages name
environment variables, never their values.

Checks that need a higher package (the organisation tree, the agent roster) are handed in
as :class:`CrossCheck` values: configuration sits below those packages and never imports
them. ``orchestra config check`` passes :data:`orchestra.org.ORGANISATION_CHECK` and
:data:`orchestra.roster.ROSTER_CHECK`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from orchestra.config.loader import (
    ConfigInvalid,
    ConfigProblem,
    env_overrides,
    locate,
    parse_config,
    read_config_data,
    yaml_line_index,
)
from orchestra.config.models import TIERS, TierConfig
from orchestra.config.names import close_matches
from orchestra.config.paths import find_config
from orchestra.config.schema import OrchestraConfig
from orchestra.errors import ConfigError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Finding:
    """One problem a :class:`CrossCheck` found, before it is given a file location."""

    path: tuple[str, ...]
    """Key path in the configuration, e.g. ``("roster", "directories", "0")``."""
    message: str
    hint: str
    warning: bool = False
    """A warning is shown but does not make the configuration invalid."""


@dataclass(frozen=True)
class CrossCheck:
    """A check of one section that needs more than the configuration package knows."""

    section: str
    """The top-level section the check reads; it runs only when that section is valid."""
    run: Callable[[OrchestraConfig, Path], Iterable[Finding]]
    """Called with the parsed configuration and the folder relative paths resolve against."""


@dataclass
class CheckReport:
    """The outcome of checking one configuration."""

    source: str
    """The file checked, or ``<defaults>`` when there is none."""
    problems: list[ConfigProblem] = field(default_factory=list)
    config: OrchestraConfig | None = None
    """The parsed configuration, when the schema holds."""

    @property
    def errors(self) -> list[ConfigProblem]:
        """Problems that make the configuration unusable."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[ConfigProblem]:
        """Problems worth fixing that do not stop Orchestra."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors


class _Locator:
    def __init__(self, source: str, text: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.lines = yaml_line_index(text)
        self.env = env_overrides(environ)
        self.problems: list[ConfigProblem] = []

    def add(self, path: tuple[str, ...], message: str, hint: str, *, warning: bool = False) -> None:
        self.problems.append(
            ConfigProblem(
                locate(path, self.source, self.lines, self.env),
                ".".join(path),
                message,
                hint,
                "warning" if warning else "error",
            )
        )


def check_config_text(
    text: str,
    *,
    source: str = "orchestra.yaml",
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    checks: Sequence[CrossCheck] = (),
) -> CheckReport:
    """Check YAML text: schema first, then every cross-reference, then ``checks``.

    ``base_dir`` is the folder relative paths are resolved against (default: the working
    folder).
    """
    env = os.environ if environ is None else environ
    report = CheckReport(source=source)
    try:
        data, _ = read_config_data(text, source=source, environ=env)
    except ConfigInvalid as exc:
        report.problems = list(exc.problems)
        return report
    try:
        config = parse_config(text, source=source, environ=env)
        usable = set(OrchestraConfig.model_fields)
    except ConfigInvalid as exc:
        report.problems = list(exc.problems)
        # Keep checking the sections that are valid on their own, so that one typo does
        # not hide every cross-reference problem elsewhere.
        config, usable = _valid_sections(data)
    else:
        report.config = config
    at = _Locator(source, text, env)
    if {"providers", "models", "tiers", "teams", "organisation"} <= usable:
        _check_models(config, at)
    if {"providers", "models", "tiers", "routing"} <= usable:
        _check_routes(config, at)
    if "providers" in usable:
        _check_providers(config, env, at)
    for check in checks:
        if check.section in usable:
            for finding in check.run(config, base_dir or Path.cwd()):
                at.add(finding.path, finding.message, finding.hint, warning=finding.warning)
    # A name refused at load (teams.x: no unit 'x') is found again by the cross-checks,
    # whose message and hint say more: theirs is kept.
    found = {p.field for p in at.problems if p.severity == "error"}
    report.problems = [p for p in report.problems if p.field not in found] + at.problems
    return report


def _valid_sections(data: Mapping[str, object]) -> tuple[OrchestraConfig, set[str]]:
    """A configuration of the sections that validate alone, and the names of the sections
    that can be relied on (valid or absent, hence defaulted)."""
    usable = set(OrchestraConfig.model_fields)
    kept: dict[str, object] = {}
    for name, value in data.items():
        if name not in usable:
            continue
        try:
            OrchestraConfig.model_validate({name: value}, context={"names": False})
        except ValidationError:
            usable.discard(name)
        else:
            kept[name] = value
    return OrchestraConfig.model_validate(kept, context={"names": False}), usable


def check_config_file(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    checks: Sequence[CrossCheck] = (),
) -> CheckReport:
    """Check the file at ``path``, or the nearest ``orchestra.yaml``, or the defaults."""
    path = path or find_config()
    if path is None:
        report = check_config_text("", source="<defaults>", environ=environ, checks=checks)
        report.problems.insert(
            0,
            ConfigProblem(
                "<defaults>",
                "",
                "no orchestra.yaml found here or in any parent folder; checked the defaults",
                "run `orchestra init` to write a starter file",
                "warning",
            ),
        )
        return report
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read configuration file {path}: {exc}",
            hint="check the path, or run `orchestra init` to write a starter file",
        ) from exc
    return check_config_text(
        text, source=str(path), environ=environ, base_dir=path.parent, checks=checks
    )


def _check_tier_map(
    tiers: Mapping[str, TierConfig],
    prefix: tuple[str, ...],
    config: OrchestraConfig,
    at: _Locator,
) -> None:
    known = sorted(config.models)
    listing = ", ".join(known) if known else "none are defined"
    for tier, entry in tiers.items():
        if tier not in TIERS:
            at.add(
                (*prefix, tier),
                f"unknown tier {tier!r}",
                f"tiers are {', '.join(TIERS)}; rename or remove this entry",
            )
        if entry.model not in config.models:
            at.add(
                (*prefix, tier, "model"),
                f"tier {tier!r} maps to unknown model {entry.model!r}",
                f"add {entry.model!r} under `models:` or use a defined model ({listing})",
            )
        for i, fallback in enumerate(entry.fallbacks):
            if fallback not in config.models:
                at.add(
                    (*prefix, tier, "fallbacks", str(i)),
                    f"fallback {fallback!r} of tier {tier!r} is not a defined model",
                    f"add {fallback!r} under `models:` or use a defined model ({listing})",
                )
            elif fallback == entry.model:
                at.add(
                    (*prefix, tier, "fallbacks", str(i)),
                    f"tier {tier!r} lists its own model {fallback!r} as a fallback",
                    "remove it: a fallback must be a different model",
                    warning=True,
                )


def _check_models(config: OrchestraConfig, at: _Locator) -> None:
    providers = sorted(config.providers)
    listing = ", ".join(providers) if providers else "none are defined"
    for name, model in config.models.items():
        if model.provider not in config.providers:
            at.add(
                ("models", name, "provider"),
                f"model {name!r} names missing provider {model.provider!r}",
                f"add {model.provider!r} under `providers:` or use a defined one ({listing})",
            )
    _check_tier_map(config.tiers, ("tiers",), config, at)
    units = {u.name: u.kind for u in config.organisation.units}
    teams = sorted(n for n, k in units.items() if k != "guild")
    for team, override in config.teams.items():
        if units.get(team) in (None, "guild"):
            at.add(
                ("teams", team),
                f"team override for unknown team {team!r}",
                "use the name of a squad (or tribe/division) under organisation.units"
                + (f": {', '.join(teams)}" if teams else "; none are defined"),
            )
        _check_tier_map(override.tiers, ("teams", team, "tiers"), config, at)


def _check_routes(config: OrchestraConfig, at: _Locator) -> None:
    """``routing.routes`` name defined models; rules name a route or a tier (the agents and
    categories they name are checked by the roster's check)."""
    routing = config.routing
    for name, route in routing.routes.items():
        for i, model in enumerate((route.model, *route.fallbacks)):
            if model not in config.models:
                where = ("routing", "routes", name, "model" if i == 0 else f"fallbacks.{i - 1}")
                at.add(
                    where,
                    f"route {name!r} names unknown model {model!r}",
                    f"add {model!r} under `models:` or use one of: "
                    + (", ".join(close_matches(model, config.models)) or ", ".join(config.models)),
                )
        if name in TIERS or name in config.tiers:
            at.add(
                ("routing", "routes", name),
                f"route {name!r} has the name of a tier",
                "rename the route: a rule naming it would be ambiguous",
            )
    targets = [*routing.routes, *TIERS]
    for kind, rules in (("agents", routing.agents), ("categories", routing.categories)):
        for who, target in rules.items():
            if target not in routing.routes and target not in TIERS:
                close = close_matches(target, targets)
                at.add(
                    ("routing", kind, who),
                    f"rule for {who!r} names unknown route {target!r}",
                    f"did you mean {', '.join(close)}?"
                    if close
                    else f"define it under routing.routes, or use one of: {', '.join(targets)}",
                )


def _check_providers(config: OrchestraConfig, environ: Mapping[str, str], at: _Locator) -> None:
    for name, provider in config.providers.items():
        env_name = provider.api_key_env
        if env_name is not None and not _ENV_NAME.match(env_name):
            # Do not echo the value: people paste the key itself here.
            at.add(
                ("providers", name, "api_key_env"),
                "api_key_env must be the NAME of an environment variable (it looks like "
                "something else, perhaps the key itself; the value is not shown)",
                "set api_key_env: ANTHROPIC_API_KEY (for example) and export the key in "
                "that variable; if a key was pasted here, rotate it",
            )
        elif env_name is not None and not environ.get(env_name):
            at.add(
                ("providers", name, "api_key_env"),
                f"environment variable {env_name} is not set; provider {name!r} will "
                "be refused upstream",
                f"export {env_name}=... in the environment that runs Orchestra",
                warning=True,
            )
        elif env_name is None and provider.api_key_secret is None and provider.kind == "anthropic":
            at.add(
                ("providers", name),
                f"provider {name!r} has no credential configured",
                "add `api_key_env: ANTHROPIC_API_KEY` (or api_key_secret)",
                warning=True,
            )
