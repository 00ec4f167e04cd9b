"""What the agent loop makes of one model reply: its tool calls checked, its mistakes named.

A weak model makes mistakes a strong one rarely does: arguments that are not JSON or have
the wrong types, tools that do not exist, replies with no tool call when one is required,
the same call over and over, replies cut off at ``max_tokens``. Each is told back to the
model in words it can act on, a bounded number of times (:class:`Corrections`); the next
one ends the step with its own status and reason. Nothing here calls a model or a tool.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestra.tools import argument_problems

MALFORMED = "malformed_call"
UNKNOWN_TOOL = "unknown_tool"
NO_TOOL_CALL = "no_tool_call"
LOOP = "loop"
MAX_TOKENS = "max_tokens"

STOP_REASONS: dict[str, str] = {
    MALFORMED: "the model's tool calls were malformed (arguments not JSON, or of the wrong "
    "types) {n} times",
    UNKNOWN_TOOL: "the model called tools it does not have {n} times",
    NO_TOOL_CALL: "the model answered with text only {n} times; this step needs tool calls "
    "ending with `finish`",
    LOOP: "the model repeated the same tool call with the same result {n} times",
    MAX_TOKENS: "the model's replies were cut off at max_tokens ({limit} tokens) {n} times; "
    "raise engine.max_output_tokens or ask for smaller steps",
}
"""Why a step ended, per mistake (``{n}``: how many times; ``{limit}``: max_tokens)."""

NUDGE = (
    "Your reply had no tool call. This step is done only through the tools: use them, "
    "then call `finish` with a short summary."
)
CONTINUE = (
    "Your reply was cut off at the max_tokens limit ({limit} tokens). Continue exactly "
    "where you stopped."
)
CUT_CALL = (
    "Not run: this call was cut off at the max_tokens limit ({limit} tokens), so its "
    "arguments are incomplete. Make the call again, smaller (write a large file in parts: "
    "`write_file` the start, then `edit_file` to add the rest)."
)
REPEATED = (
    "You have made this same call {n} times and got the same result each time; it will "
    "not change. Do something different, or call `finish`."
)


@dataclass
class Corrections:
    """How many times each kind of mistake was told back to the model in one step."""

    limit: int
    """Mistakes of one kind told back before the next one ends the step."""
    counts: dict[str, int] = field(default_factory=dict)

    def note(self, kind: str) -> bool:
        """Count one mistake of ``kind``; True when it is one too many (the step ends)."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return self.counts[kind] > self.limit

    def reason(self, kind: str, max_tokens: int) -> str:
        """Why the step ended, in words (for its summary and the report)."""
        return "stopped: " + STOP_REASONS[kind].format(n=self.counts[kind], limit=max_tokens)


@dataclass(frozen=True)
class CheckedCall:
    """One ``tool_use`` block of a reply, checked before anything runs."""

    id: Any
    name: str
    arguments: dict[str, Any]
    fault: str | None = None
    """:data:`MALFORMED`, :data:`UNKNOWN_TOOL` or :data:`MAX_TOKENS` (cut off); ``None``
    when the call may run."""
    message: str = ""
    """What the model is told instead of a result, when there is a fault."""


def _arguments(raw: Any) -> tuple[Any, str | None]:
    """The call's arguments: an object, or a string holding one (some servers send the
    model's JSON text as it came); else a problem."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            return None, f"the arguments are not valid JSON ({exc.msg} at character {exc.pos})"
    if raw is None:
        raw = {}
    return raw, None


def check_call(
    block: Mapping[str, Any],
    schemas: Mapping[str, Mapping[str, Any]],
    *,
    cut: bool,
    max_tokens: int,
) -> CheckedCall:
    """Check ``block`` against the offered tools' ``schemas`` (name -> input schema);
    ``cut``: the reply ended at max_tokens inside this block."""
    name = str(block.get("name") or "")
    call_id = block.get("id")
    if cut:
        return CheckedCall(call_id, name, {}, MAX_TOKENS, CUT_CALL.format(limit=max_tokens))
    schema = schemas.get(name)
    if schema is None:
        offered = ", ".join(sorted(schemas))
        return CheckedCall(
            call_id,
            name,
            {},
            UNKNOWN_TOOL,
            f"tool {name!r} is not available to you; the tools you have: {offered}",
        )
    arguments, problem = _arguments(block.get("input"))
    problems = [problem] if problem else argument_problems(schema, arguments)
    if problems:
        expected = json.dumps(schema.get("properties") or {})[:1500]
        return CheckedCall(
            call_id,
            name,
            {},
            MALFORMED,
            f"malformed call to {name}: {'; '.join(problems)}. Send it again with arguments "
            f"matching: {expected}",
        )
    return CheckedCall(call_id, name, arguments)


def tool_uses(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reply's ``tool_use`` blocks, in order."""
    return [block for block in content if block.get("type") == "tool_use"]


def reply_text(content: list[dict[str, Any]]) -> str:
    """The reply's text blocks, joined."""
    return " ".join(str(b.get("text", "")) for b in content if b.get("type") == "text").strip()


def cut_block(content: list[dict[str, Any]], stop_reason: Any) -> dict[str, Any] | None:
    """The ``tool_use`` block a reply ended inside, when it was cut off at max_tokens
    (only the last block can be incomplete; the ones before it were finished)."""
    if stop_reason != "max_tokens" or not content:
        return None
    last = content[-1]
    return last if last.get("type") == "tool_use" else None
