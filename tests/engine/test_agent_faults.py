"""The agent loop against a faulty or weak model (the fake upstream scripted to misbehave):
rate limits and overloads waited out, truncated replies, malformed and unknown tool calls,
text-only replies, repeated calls. Each ends cleanly, at bounded cost, with its reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestra.engine import (
    AgentOutcome,
    AgentRunner,
    AgentTask,
    ArtifactStore,
    HttpModelClient,
    ModelRetry,
    RunStore,
)
from orchestra.store import Database, open_database
from orchestra.testing import FakeUpstream, Fault, RecordedRequest, Reply, Step, ToolCall
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits, Toolbox, Workspace

TOOLS = ["read_file", "write_file", "finish"]
FINISH = Reply(tool_calls=[ToolCall("finish", {"summary": "done"})])


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = open_database(f"sqlite:///{tmp_path / 'o.db'}")
    yield db
    db.dispose()


@pytest.fixture
def toolbox(tmp_path: Path) -> Toolbox:
    repo = create_repository(tmp_path / "repo", {"a.txt": "alpha\n"})
    ws = Workspace.create(repo, tmp_path / "wt", "orchestra/faults")
    return Toolbox(ws, tmp_path / "h", ["true"], [], CommandLimits(timeout_s=5))


def _task(**kw: Any) -> AgentTask:
    base: dict[str, Any] = dict(
        run_id="r1",
        step_id="s1",
        phase="green",
        agent="python-developer",
        user_message="do it",
        model="haiku",
        max_turns=10,
        max_corrections=2,
    )
    base.update(kw)
    return AgentTask(**base)


class Waits:
    """An injected sleep: records the waits, never sleeps."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def _run(
    tmp_path: Path,
    database: Database,
    toolbox: Toolbox,
    steps: list[Step],
    *,
    retry: ModelRetry | None = None,
    **task: Any,
) -> tuple[AgentOutcome, list[RecordedRequest]]:
    runs = RunStore(database)
    runs.start_step("s1", "r1", "green", "python-developer")
    with FakeUpstream.start() as up:
        up.script(*steps)
        client = HttpModelClient(up.base_url, "k", retries=0)
        try:
            runner = AgentRunner(
                client,
                ArtifactStore(tmp_path / "home", database),
                runs,
                retry=retry or ModelRetry(),
            )
            outcome = runner.run(_task(**task), "You work.", TOOLS, toolbox)
        finally:
            client.close()
        return outcome, up.requests


# --- rate limits and overloads -------------------------------------------------------------


def test_a_429_with_retry_after_is_waited_out_then_the_step_goes_on(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    waits = Waits()
    outcome, requests = _run(
        tmp_path,
        database,
        toolbox,
        [Fault(429, retry_after=7), Fault(429, headers={"retry-after-ms": "1500"}), FINISH],
        retry=ModelRetry(sleep=waits),
    )
    assert outcome.status == "finished", outcome.summary
    assert waits.seconds == [7.0, 1.5]  # the server's own waits, not a guess
    assert len(requests) == 3 and outcome.model_calls == 1
    transcript = ArtifactStore(tmp_path / "home", database).get_json("r1", outcome.transcript_ref)
    assert transcript["waits_s"] == [7.0, 1.5]


def test_overloaded_529_and_an_openai_style_body_are_retried(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    waits = Waits()
    openai_body = {
        "error": {
            "message": "Rate limit reached for gpt-4o-mini. Please try again in 250ms.",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
    outcome, _ = _run(
        tmp_path,
        database,
        toolbox,
        [Fault(529), Fault(429, body=openai_body), FINISH],
        retry=ModelRetry(sleep=waits, base_delay_s=2.0),
    )
    assert outcome.status == "finished", outcome.summary
    assert waits.seconds == [2.0, 0.25]  # backoff with no hint; the body's own wait


def test_retries_are_bounded_in_attempts_and_in_waiting(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    waits = Waits()
    outcome, requests = _run(
        tmp_path,
        database,
        toolbox,
        [Fault(429, retry_after=1)] * 5,
        retry=ModelRetry(max_attempts=3, sleep=waits),
    )
    assert outcome.status == "model_error"
    assert len(requests) == 3 and waits.seconds == [1.0, 1.0]
    assert "HTTP 429" in outcome.summary and "after 3 attempt(s)" in outcome.summary

    waits = Waits()
    outcome, requests = _run(
        tmp_path,
        database,
        toolbox,
        [Fault(429, retry_after=600), FINISH],
        retry=ModelRetry(max_wait_s=60, sleep=waits),
    )
    # A server asking for ten minutes is not waited for: the step says so at once.
    assert outcome.status == "model_error" and waits.seconds == []
    assert "asked to wait 600.0s" in outcome.summary and len(requests) == 1


def test_a_budget_refusal_is_never_retried(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    waits = Waits()
    body = {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "budget 'run:r1' is exhausted"},
    }
    outcome, requests = _run(
        tmp_path,
        database,
        toolbox,
        [Fault(429, body=body, retry_after=5), FINISH],
        retry=ModelRetry(sleep=waits),
    )
    assert outcome.status == "budget" and waits.seconds == [] and len(requests) == 1


def test_a_client_error_is_not_retried(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    waits = Waits()
    outcome, requests = _run(
        tmp_path, database, toolbox, [Fault(400), FINISH], retry=ModelRetry(sleep=waits)
    )
    assert outcome.status == "model_error" and waits.seconds == [] and len(requests) == 1


# --- a weak model's mistakes -----------------------------------------------------------------


def _last_results(request: RecordedRequest) -> list[dict[str, Any]]:
    content = request.json["messages"][-1]["content"]
    assert isinstance(content, list)
    return content


def test_malformed_arguments_are_told_back_then_end_the_step(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    bad_types = Reply(tool_calls=[ToolCall("read_file", {"path": "a.txt", "start_line": "2"})])
    missing = Reply(tool_calls=[ToolCall("write_file", {"path": "b.txt"})])
    not_json = Reply(tool_calls=[ToolCall("read_file", {"path": 7})])
    outcome, requests = _run(
        tmp_path, database, toolbox, [bad_types, missing, not_json, FINISH], max_corrections=2
    )
    assert outcome.status == "malformed_call"
    assert "malformed" in outcome.summary and "3 times" in outcome.summary
    assert len(requests) == 3  # told twice, the third mistake ended it; FINISH never asked
    first = _last_results(requests[1])[0]
    assert first["is_error"] and "start_line must be integer, got string" in first["content"]
    second = _last_results(requests[2])[0]
    assert "content is required" in second["content"]
    assert not (toolbox.workspace.root / "b.txt").exists()  # nothing malformed ran


def test_arguments_sent_as_text_are_parsed_or_refused_as_not_json(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    # Some Anthropic-compatible servers pass the model's argument text through as a string
    # (scripted as a 200 with a verbatim body: no Reply renders a string `input`).
    text_args = Fault(
        200,
        body={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "haiku",
            "content": [
                {"type": "tool_use", "id": "t1", "name": "read_file", "input": '{"path": "a.txt"'}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 5, "output_tokens": 5},
        },
    )
    outcome, requests = _run(tmp_path, database, toolbox, [text_args, FINISH])
    assert outcome.status == "finished"
    result = _last_results(requests[1])[0]
    assert result["is_error"] and "not valid JSON" in result["content"]


def test_unknown_tools_are_told_back_then_end_the_step(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    ghost = Reply(tool_calls=[ToolCall("delete_everything", {})])
    outcome, requests = _run(tmp_path, database, toolbox, [ghost] * 4, max_corrections=1)
    assert outcome.status == "unknown_tool" and len(requests) == 2
    told = _last_results(requests[1])[0]["content"]
    assert "'delete_everything' is not available" in told and "read_file" in told


def test_text_only_replies_are_nudged_then_end_the_step_with_the_reason(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    chatty = Reply(text="I think the change looks fine.")
    outcome, requests = _run(tmp_path, database, toolbox, [chatty] * 5, max_corrections=2)
    assert outcome.status == "no_tool_call" and len(requests) == 3
    assert "text only 3 times" in outcome.summary and "looks fine" in outcome.summary
    assert "no tool call" in requests[1].json["messages"][-1]["content"]


def test_a_nudged_model_that_then_finishes_succeeds(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    outcome, requests = _run(tmp_path, database, toolbox, [Reply(text="hmm"), FINISH])
    assert outcome.status == "finished" and len(requests) == 2


def test_a_finish_with_malformed_arguments_is_not_accepted(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    bad = Reply(tool_calls=[ToolCall("finish", {"summary": "x", "verdict": "lgtm"})])
    outcome, requests = _run(tmp_path, database, toolbox, [bad, FINISH])
    assert outcome.status == "finished" and outcome.summary == "done"
    told = _last_results(requests[1])[0]["content"]
    assert "verdict must be one of approve, request_changes" in told


# --- replies cut off at max_tokens ----------------------------------------------------------


def test_a_cut_off_text_reply_is_continued_within_bounds(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    long_text = "word " * 400
    outcome, requests = _run(
        tmp_path, database, toolbox, [Reply(text=long_text), FINISH], max_tokens=50
    )
    assert outcome.status == "finished"
    asked = requests[1].json["messages"][-1]["content"]
    assert "cut off at the max_tokens limit (50 tokens)" in asked

    outcome, requests = _run(
        tmp_path,
        database,
        toolbox,
        [Reply(text=long_text)] * 5,
        max_tokens=50,
        max_continuations=1,
    )
    assert outcome.status == "max_tokens" and len(requests) == 2
    assert "cut off at max_tokens (50 tokens) 2 times" in outcome.summary


def test_a_tool_call_cut_off_at_max_tokens_is_never_run(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    big = Reply(
        tool_calls=[
            ToolCall("write_file", {"path": "small.txt", "content": "ok\n"}),
            ToolCall("write_file", {"path": "big.txt", "content": "x = 1\n" * 500}),
        ]
    )
    outcome, requests = _run(tmp_path, database, toolbox, [big, FINISH], max_tokens=120)
    assert outcome.status == "finished"
    root = toolbox.workspace.root
    assert (root / "small.txt").read_text() == "ok\n"  # complete, before the cut: it ran
    assert not (root / "big.txt").exists()  # cut off: never run
    first, second = _last_results(requests[1])
    assert not first.get("is_error")
    assert second["is_error"] and "cut off at the max_tokens limit" in second["content"]


def test_retry_hints_from_headers_and_bodies() -> None:
    from datetime import UTC, datetime

    from orchestra.engine import RetryHint, retry_hint

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    dated = retry_hint(503, {"retry-after": "Thu, 01 Jan 2026 12:00:30 GMT"}, None, now=lambda: now)
    assert dated.retryable and dated.wait_s == 30.0
    assert retry_hint(429, {"retry-after-ms": "250", "retry-after": "9"}, None).wait_s == 0.25
    # x-should-retry decides when present, both ways.
    assert not retry_hint(529, {"x-should-retry": "false"}, None).retryable
    assert retry_hint(400, {"x-should-retry": "true"}, None).retryable
    assert not retry_hint(400, {}, None).retryable
    # 409: the same keyed call is still in progress at the gateway; it will answer.
    assert retry_hint(409, {"retry-after": "5"}, None) == RetryHint(True, 5.0)
    # An overloaded error with no wait given: retryable, the backoff decides how long.
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    hint = retry_hint(500, {}, body)
    assert hint.retryable and hint.wait_s is None
    assert not retry_hint(404, {}, {"error": {"message": "no such model"}}).retryable
