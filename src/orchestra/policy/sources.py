"""Reading a policy set: the schema fragments, the ``.cedar`` files, their checks.

Policies are files kept in version control: the shipped defaults (``defaults/``) and the
organisation's folder (``policies.folder`` in ``orchestra.yaml``). Each policy gets a
stable id: its ``@id("...")`` annotation, or ``<file>:<n>`` (its position in the file).
Every problem names the file and the line and column where the policy starts: Cedar's
messages carry no position, so the files are split into policies here and each is parsed
and validated on its own.

The schema is the union of the JSON fragments in ``schema/`` (``core.json`` holds
Orchestra's entities and core actions); a domain adds its actions with a fragment of its
own, without editing anyone else's, and an organisation may add one to its folder
(``*.cedarschema.json``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cedarpy

from orchestra.errors import PolicyError

PACKAGE_DIR = Path(__file__).parent
SCHEMA_DIR = PACKAGE_DIR / "schema"
DEFAULTS_DIR = PACKAGE_DIR / "defaults"
PERMISSIVE_FILE = "permissive.cedar"
"""The shipped policy loaded only when ``policies.default`` is ``permit``."""
SCHEMA_SUFFIX = ".cedarschema.json"
ROLES = ("admin", "lead", "developer", "viewer")


@dataclass(frozen=True)
class PolicyProblem:
    """One thing wrong in a policy file."""

    file: str
    line: int
    column: int
    message: str
    policy_id: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.policy_id + ': ' if self.policy_id else ''}{self.message}"


class PolicyInvalid(PolicyError):
    """The policy set has problems; nothing of it was applied."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"{len(problems)} problem(s) in the policies:\n{lines}",
            hint="fix the files named above and run `orchestra policy check`; the policies "
            "in force stay as they were",
        )
        self.problems = problems


@dataclass(frozen=True)
class PolicyText:
    """One policy as written: where it starts and its source."""

    file: str
    line: int
    column: int
    text: str
    index: int
    """1-based position in its file."""


@dataclass(frozen=True)
class PolicyBundle:
    """A validated policy set, ready to decide with."""

    policies: cedarpy.PolicySet
    schema: cedarpy.Schema
    schema_json: Mapping[str, Any]
    ids: tuple[str, ...]
    version: str
    """Digest of the files and the settings that made the set: changes when any changes."""
    files: tuple[str, ...]
    actions: frozenset[str]
    sources: Mapping[str, PolicyText] = field(default_factory=dict)


def merged_schema(extra: Iterable[Path] = ()) -> dict[str, Any]:
    """Orchestra's Cedar schema: the package's fragments, then ``extra`` ones, merged.

    Raises :class:`PolicyInvalid` when two fragments declare the same action or entity
    type differently, or a fragment is not JSON.
    """
    merged: dict[str, Any] = {"commonTypes": {}, "entityTypes": {}, "actions": {}}
    problems: list[PolicyProblem] = []
    for path in [*sorted(SCHEMA_DIR.glob("*.json")), *extra]:
        try:
            fragment = json.loads(path.read_text(encoding="utf-8")).get("", {})
        except (OSError, ValueError, AttributeError) as exc:
            problems.append(PolicyProblem(str(path), 1, 1, f"not a Cedar JSON schema: {exc}"))
            continue
        for part in ("commonTypes", "entityTypes", "actions"):
            for name, value in fragment.get(part, {}).items():
                if name in merged[part] and merged[part][name] != value:
                    problems.append(
                        PolicyProblem(str(path), 1, 1, f"{part} {name!r} is already declared")
                    )
                merged[part][name] = value
    if problems:
        raise PolicyInvalid(problems)
    return {"": merged}


def split_policies(text: str, file: str) -> Iterator[PolicyText]:
    """The policies of one file, each with the line and column it starts at.

    A policy ends at a ``;`` outside strings and ``//`` comments; annotations belong to the
    policy after them. Text after the last ``;`` that is not blank is yielded too, so a
    missing ``;`` is reported where the policy starts.
    """
    start: int | None = None
    index = 0
    i = 0
    in_string = False
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif text.startswith("//", i):
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        elif ch == '"':
            in_string = True
            start = i if start is None else start
        elif ch == ";" and start is not None:
            index += 1
            yield _policy_text(text, file, start, i + 1, index)
            start = None
        elif not ch.isspace() and start is None:
            start = i
        i += 1
    if start is not None:
        yield _policy_text(text, file, start, len(text), index + 1)


def _policy_text(text: str, file: str, start: int, end: int, index: int) -> PolicyText:
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return PolicyText(file, line, column, text[start:end], index)


def policy_files(folder: Path | None, *, default: str) -> list[tuple[str, Path]]:
    """The files of a policy set as ``(name shown in messages, path)``, in load order."""
    shipped = [
        (f"defaults/{p.name}", p)
        for p in sorted(DEFAULTS_DIR.glob("*.cedar"))
        if default == "permit" or p.name != PERMISSIVE_FILE
    ]
    own = sorted(folder.rglob("*.cedar")) if folder is not None else []
    return shipped + [(str(p), p) for p in own]


def load_bundle(
    files: list[tuple[str, Path]],
    *,
    schema_files: Iterable[Path] = (),
    known: Mapping[str, Iterable[str]] | None = None,
    settings: str = "",
) -> PolicyBundle:
    """Parse, id and validate every policy of ``files``; all or nothing.

    ``known``: entity ids that must exist, by Cedar type (``Role`` always; ``Unit`` and
    ``Developer`` from the organisation tree when given): a policy naming another one is
    refused with the close matches. Raises :class:`PolicyInvalid` with every problem.
    """
    schema_json = merged_schema(schema_files)
    schema = cedarpy.Schema.from_json_str(json.dumps(schema_json))
    names = {"Role": set(ROLES), **{k: set(v) for k, v in (known or {}).items()}}
    problems: list[PolicyProblem] = []
    static: dict[str, Any] = {}
    sources: dict[str, PolicyText] = {}
    digest = hashlib.sha256(settings.encode())
    for shown, path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(PolicyProblem(shown, 1, 1, f"cannot read the file: {exc}"))
            continue
        digest.update(shown.encode() + b"\0" + text.encode() + b"\0")
        for policy in split_policies(text, shown):
            est, policy_id, found = _checked(policy, schema, names)
            problems.extend(found)
            if est is None:
                continue
            if policy_id in static:
                first = sources[policy_id]
                problems.append(
                    _problem(
                        policy,
                        f"@id {policy_id!r} is used twice (first at {first.file}:{first.line})",
                        policy_id,
                    )
                )
                continue
            static[policy_id] = est
            sources[policy_id] = policy
    if problems:
        raise PolicyInvalid(problems)
    document = {"staticPolicies": static, "templates": {}, "templateLinks": []}
    return PolicyBundle(
        policies=cedarpy.PolicySet.from_json_str(json.dumps(document)),
        schema=schema,
        schema_json=schema_json,
        ids=tuple(static),
        version=digest.hexdigest()[:16],
        files=tuple(shown for shown, _ in files),
        actions=frozenset(schema_json[""]["actions"]),
        sources=sources,
    )


def _problem(policy: PolicyText, message: str, policy_id: str = "") -> PolicyProblem:
    return PolicyProblem(policy.file, policy.line, policy.column, message, policy_id)


def _checked(
    policy: PolicyText, schema: cedarpy.Schema, names: Mapping[str, set[str]]
) -> tuple[dict[str, Any] | None, str, list[PolicyProblem]]:
    """One policy's EST, its id and its problems (parse, schema, unknown names)."""
    fallback_id = f"{policy.file}:{policy.index}"
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(policy.text))
    except ValueError as exc:
        return None, fallback_id, [_problem(policy, f"cannot parse: {exc}", fallback_id)]
    if parsed.get("templates"):
        return None, fallback_id, [_problem(policy, "templates are not supported", fallback_id)]
    (est,) = parsed["staticPolicies"].values()
    policy_id = str(est.get("annotations", {}).get("id") or fallback_id)
    result = cedarpy.validate_policies(policy.text, schema)
    problems = [_problem(policy, _plain(e.error), policy_id) for e in result.errors]
    for kind, entity_id in sorted(set(_entity_refs(est))):
        if kind in names and entity_id not in names[kind]:
            problems.append(_problem(policy, _unknown(kind, entity_id, names[kind]), policy_id))
    return est, policy_id, problems


def _plain(error: str) -> str:
    """Cedar's message without its ``for policy `policy0`,`` prefix (the id is ours)."""
    prefix = "for policy `policy0`, "
    return error[len(prefix) :] if error.startswith(prefix) else error


def _unknown(kind: str, entity_id: str, known: set[str]) -> str:
    close = difflib.get_close_matches(entity_id, sorted(known), n=3)
    also = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listed = ", ".join(sorted(known)[:12]) or "none"
    return f'unknown {kind.lower()} {kind}::"{entity_id}" (known: {listed}){also}'


def _entity_refs(node: object) -> Iterator[tuple[str, str]]:
    """Every ``(type, id)`` entity literal in a policy's EST."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), str) and isinstance(node.get("id"), str):
            yield node["type"], node["id"]
        for value in node.values():
            yield from _entity_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _entity_refs(value)
