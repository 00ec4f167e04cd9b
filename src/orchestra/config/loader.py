"""Reading ``orchestra.yaml`` with environment overrides and located errors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from orchestra.config.paths import find_config
from orchestra.config.schema import OrchestraConfig
from orchestra.errors import ConfigError

ENV_PREFIX = "ORCHESTRA__"
"""``ORCHESTRA__GATEWAY__PORT=9000`` overrides ``gateway.port``; ``__`` separates levels."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration, with where it is and how to fix it."""

    location: str
    """``file:line`` where known, else the dotted path of the field."""
    field: str
    message: str
    hint: str
    severity: Literal["error", "warning"] = "error"
    """Warnings are shown but do not make ``orchestra config check`` fail."""

    def render(self) -> str:
        """``location: field: message`` and the fix on the next line."""
        where = f"{self.location}: {self.field}: " if self.field else f"{self.location}: "
        return f"{where}{self.message}\n  fix: {self.hint}"


class ConfigInvalid(ConfigError):
    """The configuration has one or more problems; ``problems`` lists them all."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        first = problems[0]
        super().__init__(first.message, hint=first.hint, location=first.location)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(p.render() for p in self.problems)


def yaml_line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line number.

    Sequence items are keyed by their index as a string, so ``("units", "2", "parent")``
    is the ``parent`` key of the third unit.
    """
    index: dict[tuple[str, ...], int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return index

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        index[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                index[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return index


def _apply_env(
    data: dict[str, Any], environ: Mapping[str, str], applied: dict[tuple[str, ...], str]
) -> dict[str, Any]:
    """Apply ``ORCHESTRA__A__B`` overrides; record each key path's variable in ``applied``."""
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if not keys:
            continue
        target = data
        for key in keys[:-1]:
            nxt = target.get(key)
            if not isinstance(nxt, dict):
                nxt = {}
                target[key] = nxt
            target = nxt
        try:
            target[keys[-1]] = yaml.safe_load(raw) if raw else raw
        except yaml.YAMLError:
            # A value that is not valid YAML is taken literally (e.g. ``a: b`` in a URL).
            target[keys[-1]] = raw
        applied[tuple(keys)] = name
    return data


_HINTS = {
    "extra_forbidden": "remove this key or check its spelling against docs/configuration.md",
    "missing": "add this required field",
    "literal_error": "use one of the allowed values listed in the message",
    "string_pattern_mismatch": "use lowercase letters, digits, '.', '_' and '-' only "
    "(such names are used as ids)",
}


def env_overrides(environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Key paths set by ``ORCHESTRA__...`` variables, mapped to the variable's name."""
    applied: dict[tuple[str, ...], str] = {}
    _apply_env({}, environ, applied)
    return applied


def locate(
    path: tuple[str, ...],
    source: str,
    lines: Mapping[tuple[str, ...], int],
    env: Mapping[tuple[str, ...], str] | None = None,
) -> str:
    """``file:line`` of the deepest known key on ``path``, or the environment variable
    that set it."""
    for depth in range(len(path), 0, -1):
        if env and path[:depth] in env:
            return f"environment variable {env[path[:depth]]}"
    for depth in range(len(path), -1, -1):
        line = lines.get(path[:depth])
        if line is not None and (depth > 0 or not path):
            return f"{source}:{line}"
    return source


def _problems_from(
    error: ValidationError,
    source: str,
    lines: dict[tuple[str, ...], int],
    env: dict[tuple[str, ...], str],
) -> list[ConfigProblem]:
    problems = []
    for item in error.errors():
        path = tuple(str(p) for p in item["loc"])
        location = locate(path, source, lines, env)
        hint = _HINTS.get(item["type"], "correct the value; see docs/configuration.md")
        problems.append(ConfigProblem(location, ".".join(path), item["msg"], hint))
    return problems


def read_config_data(
    text: str, *, source: str = "orchestra.yaml", environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The raw YAML mapping with environment overrides applied, and which key paths the
    environment set. Raises :class:`ConfigInvalid` for YAML that does not parse."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        # Only the parser's short description: str(exc) quotes the offending line, which
        # may hold a credential someone pasted into the file.
        problem = getattr(exc, "problem", None) or "syntax error"
        column = f" (column {mark.column + 1})" if mark is not None else ""
        raise ConfigInvalid(
            [
                ConfigProblem(
                    where,
                    "",
                    f"not valid YAML: {problem}{column}",
                    "fix the YAML syntax (indentation, a missing ':' or an unclosed quote)",
                )
            ]
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigInvalid(
            [ConfigProblem(source, "", "the top level must be a mapping", "start with keys")]
        )
    applied: dict[tuple[str, ...], str] = {}
    data = _apply_env(data, os.environ if environ is None else environ, applied)
    return data, applied


def parse_config(
    text: str, *, source: str = "orchestra.yaml", environ: Mapping[str, str] | None = None
) -> OrchestraConfig:
    """Validate YAML text (plus environment overrides) into an :class:`OrchestraConfig`."""
    data, applied = read_config_data(text, source=source, environ=environ)
    try:
        return OrchestraConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigInvalid(_problems_from(exc, source, yaml_line_index(text), applied)) from exc


def load_config(
    path: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> OrchestraConfig:
    """Load the configuration at ``path`` or the nearest ``orchestra.yaml``.

    With no file anywhere, the built-in defaults apply (a solo developer, no providers).
    """
    path = path or find_config()
    if path is None:
        return parse_config("", source="<defaults>", environ=environ)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read configuration file {path}: {exc.strerror}",
            hint="check the path, or run `orchestra init` to write a starter file",
        ) from exc
    config = parse_config(text, source=str(path), environ=environ)
    folder = config.policies.folder
    if folder is not None and not Path(folder).expanduser().is_absolute():
        # Policies live beside orchestra.yaml: relative to it, not to the working folder.
        policies = config.policies.model_copy(update={"folder": str(path.parent / folder)})
        config = config.model_copy(update={"policies": policies})
    return config
