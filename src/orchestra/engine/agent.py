"""The agent loop: a roster entry run as a tool-use conversation through the gateway.

Every model call and every tool execution goes through ``checkpoint`` (DBOS's
``run_step`` inside a workflow), so a resumed run replays completed calls from their
recorded outputs instead of repeating them. Outputs are references to files in the
artefact store; the loop rebuilds the conversation from them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from orchestra.engine.artifacts import ArtifactStore
from orchestra.engine.model import Attribution, BudgetExhausted, ModelCallFailed, ModelClient
from orchestra.engine.runs import RunStore
from orchestra.providers import Usage
from orchestra.tools import Toolbox

T = TypeVar("T")
Checkpoint = Callable[[str, Callable[[], Any]], Any]
"""(step name, function) -> the function's result, recorded durably."""

INLINE_RESULT_LIMIT = 4000

ENGINE_RULES = """

## Working inside Orchestra's engine
You act only through the tools offered. Paths are relative to the repository root.
The engine runs the tests and enforces the gates; do not try to work around them.
When your part is done, call `finish` once with a short summary (and, when your step
asks for it, a plan, or a verdict with findings)."""


def plain_call(name: str, fn: Callable[[], T]) -> T:
    """A checkpoint that records nothing (for running an agent outside a workflow)."""
    return fn()


@dataclass(frozen=True)
class AgentTask:
    """Everything one agent step needs; JSON-serialisable so workflows can pass it."""

    run_id: str
    step_id: str
    phase: str
    agent: str
    user_message: str
    model: str
    max_turns: int = 24
    max_tokens: int = 4096
    loop_repeats: int = 3
    allowed_writes: list[str] | None = None
    protected: list[str] = field(default_factory=list)
    write_reason: str = ""


@dataclass(frozen=True)
class AgentOutcome:
    """How an agent step ended (small: the transcript is a reference)."""

    step_id: str
    agent: str
    status: str
    """``finished``, ``turn_limit``, ``budget``, ``loop``, ``model_error``."""
    summary: str
    result: dict[str, Any]
    """The ``finish`` call's input (plan, verdict, findings ...)."""
    usage: dict[str, int]
    model_calls: int
    transcript_ref: str

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentOutcome:
        return cls(**data)


def safe_name(step_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", step_id)


def _usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }


@dataclass
class AgentRunner:
    """Runs one :class:`AgentTask` to an :class:`AgentOutcome`."""

    client: ModelClient
    artifacts: ArtifactStore
    runs: RunStore
    checkpoint: Checkpoint = plain_call

    def run(
        self, task: AgentTask, system_prompt: str, tool_names: list[str], toolbox: Toolbox
    ) -> AgentOutcome:
        base = f"steps/{safe_name(task.step_id)}"
        tools = [spec.as_anthropic() for spec in toolbox.specs(tool_names)]
        offered = {tool["name"] for tool in tools}
        system = system_prompt + ENGINE_RULES
        messages: list[dict[str, Any]] = [{"role": "user", "content": task.user_message}]
        usage = Usage()
        calls = 0
        seen: dict[str, int] = {}
        attribution = Attribution(task.run_id, task.step_id, task.agent)
        status, summary, result = "turn_limit", "", {}
        nudged = False
        for turn in range(task.max_turns):
            request = {
                "model": task.model,
                "max_tokens": task.max_tokens,
                "system": system,
                "tools": tools,
                "messages": messages,
            }

            def call_model(turn: int = turn, request: dict[str, Any] = request) -> dict[str, Any]:
                try:
                    response = self.client.create(request, attribution)
                except BudgetExhausted as exc:
                    return {"error": "budget", "message": exc.message}
                except ModelCallFailed as exc:
                    return {"error": "model", "message": exc.message}
                ref = self.artifacts.put_json(
                    task.run_id, f"{base}/turn-{turn:03d}.json", response.raw, "transcript"
                )
                return {"ref": ref, "usage": _usage_dict(response.usage), "model": response.model}

            outcome = self.checkpoint(f"model:{task.step_id}:{turn}", call_model)
            if "error" in outcome:
                status = "budget" if outcome["error"] == "budget" else "model_error"
                summary = outcome["message"]
                break
            calls += 1
            usage = usage + Usage(**outcome["usage"])
            model = outcome.get("model") or task.model
            self.runs.set_usage(task.run_id, task.step_id, usage, calls, model)
            body = self.artifacts.get_json(task.run_id, outcome["ref"])
            content = list(body.get("content") or [])
            messages.append({"role": "assistant", "content": content})
            uses = [block for block in content if block.get("type") == "tool_use"]
            if not uses:
                text = " ".join(b.get("text", "") for b in content if b.get("type") == "text")
                if nudged:
                    status, summary = "finished", text.strip()[:2000]
                    break
                nudged = True
                messages.append(
                    {"role": "user", "content": "Use the tools to do the work, then call `finish`."}
                )
                continue
            results: list[dict[str, Any]] = []
            finish_input: dict[str, Any] | None = None
            looping = False
            for index, use in enumerate(uses):
                name, arguments = str(use.get("name")), use.get("input") or {}
                if name == "finish" and name in offered:
                    finish_input = arguments if isinstance(arguments, dict) else {}
                    results.append(
                        {"type": "tool_result", "tool_use_id": use.get("id"), "content": "ok"}
                    )
                    continue

                def run_tool(
                    turn: int = turn,
                    index: int = index,
                    name: str = name,
                    arguments: Any = arguments,
                ) -> dict[str, Any]:
                    if name not in offered:
                        return {
                            "content": f"tool {name!r} is not available to you",
                            "is_error": True,
                        }
                    res = toolbox.execute(name, arguments)
                    if len(res.content) <= INLINE_RESULT_LIMIT:
                        return {"content": res.content, "is_error": res.is_error}
                    ref = self.artifacts.put_text(
                        task.run_id, f"{base}/tool-{turn:03d}-{index}.txt", res.content, "tool"
                    )
                    return {"ref": ref, "is_error": res.is_error}

                recorded = self.checkpoint(f"tool:{task.step_id}:{turn}:{index}:{name}", run_tool)
                text = recorded.get("content")
                if text is None:
                    text = self.artifacts.get_text(task.run_id, recorded["ref"])
                results.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": use.get("id"),
                        "content": text,
                        "is_error": bool(recorded.get("is_error")),
                    }
                )
                key = hashlib.sha256(
                    json.dumps([name, arguments, text], sort_keys=True, default=str).encode()
                ).hexdigest()
                seen[key] = seen.get(key, 0) + 1
                if seen[key] >= task.loop_repeats:
                    looping = True
            messages.append({"role": "user", "content": results})
            if finish_input is not None:
                status = "finished"
                summary = str(finish_input.get("summary", ""))[:4000]
                result = finish_input
                break
            if looping:
                status, summary = (
                    "loop",
                    "stopped: the same tool call returned the same result repeatedly",
                )
                break
        transcript_ref = self.artifacts.put_json(
            task.run_id,
            f"{base}/transcript.json",
            {"system": system, "messages": messages, "status": status},
            "transcript",
        )
        return AgentOutcome(
            step_id=task.step_id,
            agent=task.agent,
            status=status,
            summary=summary,
            result=result,
            usage=_usage_dict(usage),
            model_calls=calls,
            transcript_ref=transcript_ref,
        )
