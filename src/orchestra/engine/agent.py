"""The agent loop: a roster entry run as a tool-use conversation through the gateway.

Every model call and every tool execution goes through ``checkpoint`` (DBOS's
``run_step`` inside a workflow), so a resumed run replays completed calls from their
recorded outputs instead of repeating them. Outputs are references to files in the
artefact store; the loop rebuilds the conversation from them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from orchestra.engine.artifacts import ArtifactStore
from orchestra.engine.model import (
    Attribution,
    BudgetExhausted,
    ModelCallFailed,
    ModelClient,
    ModelResponse,
)
from orchestra.engine.retries import ModelRetry
from orchestra.engine.runs import RunStore
from orchestra.engine.turns import (
    CONTINUE,
    LOOP,
    MAX_TOKENS,
    NO_TOOL_CALL,
    NUDGE,
    REPEATED,
    CheckedCall,
    Corrections,
    check_call,
    cut_block,
    reply_text,
    tool_uses,
)
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


def workflow_scope() -> str | None:
    """The id of the durable workflow running this step (``None`` outside one): stable
    across a replay, so it names the step's model calls for the gateway."""
    from dbos import DBOS

    workflow_id: str | None = DBOS.workflow_id
    return workflow_id


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
    max_corrections: int = 2
    """Mistakes of one kind (malformed or unknown tool calls, text-only replies, repeated
    calls) told back to the model before the next one ends the step."""
    max_continuations: int = 2
    """Replies cut off at ``max_tokens`` the model is asked to continue; one more ends
    the step with status ``max_tokens``."""
    allowed_writes: list[str] | None = None
    protected: list[str] = field(default_factory=list)
    write_reason: str = ""


@dataclass(frozen=True)
class AgentOutcome:
    """How an agent step ended (small: the transcript is a reference)."""

    step_id: str
    agent: str
    status: str
    """``finished``, ``turn_limit``, ``budget``, ``model_error``, or the mistake that ended
    it: ``loop``, ``malformed_call``, ``unknown_tool``, ``no_tool_call``, ``max_tokens``."""
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
class _Step:
    """One agent step while it runs: the conversation and how it is going."""

    task: AgentTask
    base: str
    """Where the step's artefacts go (``steps/<step id>``)."""
    messages: list[dict[str, Any]]
    corrections: Corrections
    usage: Usage = field(default_factory=Usage)
    calls: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    truncations: int = 0
    waits: list[float] = field(default_factory=list)
    """Seconds waited before retried model calls (rate limits, overloads)."""
    status: str = "turn_limit"
    summary: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    def end(self, status: str, summary: str, result: dict[str, Any] | None = None) -> bool:
        """Record how the step ended; True (so a turn can ``return step.end(...)``)."""
        self.status, self.summary, self.result = status, summary, result or {}
        return True

    def stop_for(self, kind: str) -> bool:
        """End the step because of mistake ``kind`` (its count is over the limit)."""
        return self.end(kind, self.corrections.reason(kind, self.task.max_tokens))


def _failure_message(exc: ModelCallFailed, attempts: int, waited: float) -> str:
    if attempts == 1 and not exc.retry.retryable:
        return exc.message
    asked = exc.retry.wait_s
    detail = f"after {attempts} attempt(s) and {waited:.1f}s of waiting"
    if asked is not None:
        detail += f"; the server last asked to wait {asked:.1f}s"
    return f"{exc.message} ({detail})"


@dataclass
class AgentRunner:
    """Runs one :class:`AgentTask` to an :class:`AgentOutcome`."""

    client: ModelClient
    artifacts: ArtifactStore
    runs: RunStore
    checkpoint: Checkpoint = plain_call
    retry: ModelRetry = field(default_factory=ModelRetry)
    """When a failed model call is tried again (rate limits, overloads), and how to wait."""
    scope: Callable[[], str | None] = workflow_scope
    """The step's workflow id, which with the turn keys each model call
    (``Idempotency-Key``: the gateway answers a replayed call without calling again)."""

    def run(
        self, task: AgentTask, system_prompt: str, tool_names: list[str], toolbox: Toolbox
    ) -> AgentOutcome:
        """Run the conversation until the agent finishes or a stop condition holds."""
        specs = toolbox.specs(tool_names)
        tools = [spec.as_anthropic() for spec in specs]
        schemas = {spec.name: spec.input_schema for spec in specs}
        system = system_prompt + ENGINE_RULES
        step = _Step(
            task,
            f"steps/{safe_name(task.step_id)}",
            [{"role": "user", "content": task.user_message}],
            Corrections(task.max_corrections),
        )
        attribution = Attribution(task.run_id, task.step_id, task.agent)
        scope = self.scope()
        for turn in range(task.max_turns):
            request = {
                "model": task.model,
                "max_tokens": task.max_tokens,
                "system": system,
                "tools": tools,
                "messages": step.messages,
            }
            outcome = self.checkpoint(
                f"model:{task.step_id}:{turn}",
                functools.partial(
                    self._call_model,
                    step,
                    turn,
                    request,
                    attribution.for_turn(scope, turn, request),
                ),
            )
            if "error" in outcome:
                status = "budget" if outcome["error"] == "budget" else "model_error"
                step.end(status, outcome["message"])
                break
            body = self._record_call(step, outcome)
            if self._take_turn(step, turn, body, schemas, toolbox):
                break
        transcript_ref = self.artifacts.put_json(
            task.run_id,
            f"{step.base}/transcript.json",
            {
                "system": system,
                "messages": step.messages,
                "status": step.status,
                "waits_s": step.waits,
            },
            "transcript",
        )
        return AgentOutcome(
            step_id=task.step_id,
            agent=task.agent,
            status=step.status,
            summary=step.summary,
            result=step.result,
            usage=_usage_dict(step.usage),
            model_calls=step.calls,
            transcript_ref=transcript_ref,
        )

    def _call_model(
        self, step: _Step, turn: int, request: dict[str, Any], attribution: Attribution
    ) -> dict[str, Any]:
        """One model call, retried within :attr:`retry`'s bounds when the failure clears
        with time; the recorded output is a reference to the response (or the error)."""
        waits: list[float] = []
        attempt = 0
        while True:
            attempt += 1
            try:
                response: ModelResponse = self.client.create(request, attribution)
                break
            except BudgetExhausted as exc:
                return {"error": "budget", "message": exc.message}
            except ModelCallFailed as exc:
                delay = self.retry.delay(attempt, exc.retry, sum(waits))
                if delay is None:
                    return {"error": "model", "message": _failure_message(exc, attempt, sum(waits))}
                self.retry.sleep(delay)
                waits.append(delay)
        task = step.task
        ref = self.artifacts.put_json(
            task.run_id, f"{step.base}/turn-{turn:03d}.json", response.raw, "transcript"
        )
        return {
            "ref": ref,
            "usage": _usage_dict(response.usage),
            "model": response.model,
            "waits_s": waits,
        }

    def _record_call(self, step: _Step, outcome: dict[str, Any]) -> dict[str, Any]:
        """Count the call's usage (shown live) and return the response body."""
        task = step.task
        step.calls += 1
        step.usage = step.usage + Usage(**outcome["usage"])
        step.waits.extend(outcome.get("waits_s") or [])
        model = outcome.get("model") or task.model
        self.runs.set_usage(task.run_id, task.step_id, step.usage, step.calls, model)
        body: dict[str, Any] = self.artifacts.get_json(task.run_id, outcome["ref"])
        return body

    def _take_turn(
        self,
        step: _Step,
        turn: int,
        body: dict[str, Any],
        schemas: dict[str, dict[str, Any]],
        toolbox: Toolbox,
    ) -> bool:
        """Answer one reply (tool results, a nudge or a request to continue); True when
        the step ends with it."""
        task = step.task
        content = list(body.get("content") or []) or [{"type": "text", "text": "(no reply)"}]
        step.messages.append({"role": "assistant", "content": content})
        stop_reason = body.get("stop_reason")
        truncated = stop_reason == "max_tokens"
        if truncated:
            step.truncations += 1
            if step.truncations > task.max_continuations:
                step.corrections.counts[MAX_TOKENS] = step.truncations
                return step.stop_for(MAX_TOKENS)
        uses = tool_uses(content)
        if not uses:
            if truncated:
                step.messages.append(
                    {"role": "user", "content": CONTINUE.format(limit=task.max_tokens)}
                )
                return False
            if step.corrections.note(NO_TOOL_CALL):
                step.stop_for(NO_TOOL_CALL)
                said = reply_text(content)[:300]
                step.summary += f" (its last reply: {said!r})" if said else ""
                return True
            step.messages.append({"role": "user", "content": NUDGE})
            return False
        cut = cut_block(content, stop_reason)
        results: list[dict[str, Any]] = []
        finish_input: dict[str, Any] | None = None
        ended: str | None = None
        for index, use in enumerate(uses):
            call = check_call(use, schemas, cut=use is cut, max_tokens=task.max_tokens)
            if call.fault is None and call.name == "finish":
                finish_input = call.arguments
                results.append({"type": "tool_result", "tool_use_id": call.id, "content": "ok"})
                continue
            result, fault = self._tool_result(step, turn, index, call, toolbox)
            results.append(result)
            if fault is not None and fault != MAX_TOKENS and step.corrections.note(fault):
                ended = ended or fault
        step.messages.append({"role": "user", "content": results})
        if finish_input is not None:
            summary = str(finish_input.get("summary", ""))[:4000]
            return step.end("finished", summary, finish_input)
        return step.stop_for(ended) if ended is not None else False

    def _tool_result(
        self, step: _Step, turn: int, index: int, call: CheckedCall, toolbox: Toolbox
    ) -> tuple[dict[str, Any], str | None]:
        """Run ``call`` as a step (or record why it does not run): its ``tool_result``
        block, and the mistake it was (a repeat of the same call and result included)."""
        task = step.task

        def run_tool() -> dict[str, Any]:
            if call.fault is not None:
                return {"content": call.message, "is_error": True, "fault": call.fault}
            res = toolbox.execute(call.name, call.arguments)
            if len(res.content) <= INLINE_RESULT_LIMIT:
                return {"content": res.content, "is_error": res.is_error}
            ref = self.artifacts.put_text(
                task.run_id, f"{step.base}/tool-{turn:03d}-{index}.txt", res.content, "tool"
            )
            return {"ref": ref, "is_error": res.is_error}

        recorded = self.checkpoint(f"tool:{task.step_id}:{turn}:{index}:{call.name}", run_tool)
        text = recorded.get("content")
        if text is None:
            text = self.artifacts.get_text(task.run_id, recorded["ref"])
        fault: str | None = recorded.get("fault")
        if fault is None:
            key = hashlib.sha256(
                json.dumps([call.name, call.arguments, text], sort_keys=True, default=str).encode()
            ).hexdigest()
            step.seen[key] = step.seen.get(key, 0) + 1
            if step.seen[key] >= task.loop_repeats:
                fault = LOOP
                text = f"{text}\n\n{REPEATED.format(n=step.seen[key])}"
        block = {
            "type": "tool_result",
            "tool_use_id": call.id,
            "content": text,
            "is_error": bool(recorded.get("is_error")),
        }
        return block, fault
