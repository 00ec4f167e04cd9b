"""Checking a tool call's arguments against the tool's JSON schema, before it runs.

Weak models send arguments of the wrong type (``"start_line": "5"``), leave out required
ones or invent others. The tools' schemas use a small part of JSON Schema (``type``,
``properties``, ``required``, ``additionalProperties: false``, ``items``, ``enum``,
``minItems``); :func:`argument_problems` checks exactly that part and says, in words a
model can act on, what is wrong. No dependency: the subset is a few lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}
MAX_PROBLEMS = 5
"""Problems listed per call (the count of the rest is given)."""


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", int: "integer", float: "number"}.get(
        type(value), type(value).__name__
    )


def _is_type(value: Any, expected: str) -> bool:
    kinds = _TYPES.get(expected)
    if kinds is None:
        return True  # a type this checker does not know is not refused
    if isinstance(value, bool) and expected != "boolean":
        return False  # JSON true is not the integer 1
    return isinstance(value, kinds)


def _check(schema: Mapping[str, Any], value: Any, where: str, out: list[str]) -> None:
    expected = schema.get("type")
    if isinstance(expected, str) and not _is_type(value, expected):
        out.append(f"{where} must be {expected}, got {_type_name(value)}")
        return
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        out.append(f"{where} must be one of {', '.join(map(str, enum))}, got {value!r}"[:200])
    if isinstance(value, dict):
        _check_object(schema, value, where, out)
    elif isinstance(value, list):
        minimum = schema.get("minItems")
        if isinstance(minimum, int) and len(value) < minimum:
            out.append(f"{where} needs at least {minimum} item(s)")
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                _check(items, item, f"{where}[{index}]", out)


def _check_object(
    schema: Mapping[str, Any], value: dict[str, Any], where: str, out: list[str]
) -> None:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    prefix = f"{where}." if where != "arguments" else ""
    for name in schema.get("required") or []:
        if name not in value:
            out.append(f"{prefix}{name!s} is required")
    for name, item in value.items():
        sub = properties.get(name)
        if isinstance(sub, Mapping):
            _check(sub, item, f"{prefix}{name}", out)
        elif schema.get("additionalProperties") is False:
            out.append(f"{prefix}{name} is not an argument of this tool")


def argument_problems(schema: Mapping[str, Any], arguments: Any) -> list[str]:
    """What is wrong with ``arguments`` for a tool whose input schema is ``schema``: at
    most :data:`MAX_PROBLEMS` sentences (and the count of the rest); empty when valid."""
    problems: list[str] = []
    if not isinstance(arguments, dict):
        return [f"the arguments must be a JSON object, got {_type_name(arguments)}"]
    _check(schema, arguments, "arguments", problems)
    if len(problems) > MAX_PROBLEMS:
        rest = len(problems) - MAX_PROBLEMS
        problems = [*problems[:MAX_PROBLEMS], f"and {rest} more problem(s)"]
    return problems
