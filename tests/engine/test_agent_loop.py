"""The agent loop over HTTP against the fake upstream: stop conditions and attribution."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestra.engine import AgentRunner, AgentTask, ArtifactStore, HttpModelClient, RunStore
from orchestra.store import Database, open_database
from orchestra.testing import FakeUpstream, Fault, RecordedRequest, Reply, ToolCall
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits, Toolbox, Workspace


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = open_database(f"sqlite:///{tmp_path / 'o.db'}")
    yield db
    db.dispose()


@pytest.fixture
def toolbox(tmp_path: Path) -> Toolbox:
    repo = create_repository(tmp_path / "repo", {"a.txt": "alpha\n"})
    ws = Workspace.create(repo, tmp_path / "wt", "orchestra/loop")
    return Toolbox(ws, tmp_path / "h", ["true"], [], CommandLimits(timeout_s=5))


def _task(**kw: object) -> AgentTask:
    base = dict(
        run_id="r1",
        step_id="s1",
        phase="green",
        agent="python-developer",
        user_message="do it",
        model="haiku",
        max_turns=6,
        loop_repeats=3,
    )
    base.update(kw)
    return AgentTask(**base)  # type: ignore[arg-type]


_CLIENTS: list[HttpModelClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def _runner(upstream: FakeUpstream, tmp_path: Path, database: Database) -> AgentRunner:
    runs = RunStore(database)
    runs.start_step("s1", "r1", "green", "python-developer")
    client = HttpModelClient(upstream.base_url, "k", retries=0)
    _CLIENTS.append(client)
    return AgentRunner(client, ArtifactStore(tmp_path / "home", database), runs)


TOOLS = ["read_file", "write_file", "finish"]


def test_finish_ends_the_step_and_tools_really_ran(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    with FakeUpstream.start() as up:
        up.script(
            Reply(tool_calls=[ToolCall("write_file", {"path": "b.txt", "content": "beta\n"})]),
            Reply(tool_calls=[ToolCall("finish", {"summary": "wrote b"})]),
        )
        outcome = _runner(up, tmp_path, database).run(_task(), "You write.", TOOLS, toolbox)
        requests = up.requests
    assert outcome.status == "finished" and outcome.summary == "wrote b"
    assert (toolbox.workspace.root / "b.txt").read_text() == "beta\n"
    assert outcome.model_calls == 2
    assert outcome.usage["input_tokens"] > 0
    # Attribution headers on every call; tools offered with their schemas.
    assert all(r.headers["x-orchestra-run"] == "r1" for r in requests)
    assert all(r.headers["x-orchestra-step"] == "s1" for r in requests)
    assert requests[0].json["tools"][0]["name"] == "read_file"
    # The second call carries the tool result of the first.
    last = requests[1].json["messages"][-1]["content"][0]
    assert last["type"] == "tool_result" and "created b.txt" in last["content"]


def test_each_model_call_of_a_durable_step_carries_its_idempotency_key(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    script = (
        Reply(tool_calls=[ToolCall("read_file", {"path": "a.txt"})]),
        Reply(tool_calls=[ToolCall("finish", {"summary": "read"})]),
    )
    with FakeUpstream.start() as up:
        up.script(*script)
        plain = _runner(up, tmp_path, database)
        plain.run(_task(), "x", TOOLS, toolbox)  # outside a workflow: no key
        up.script(*script)
        durable = _runner(up, tmp_path, database)
        durable.scope = lambda: "r1~2:s1"  # the step's workflow id (a continued run's)
        durable.run(_task(), "x", TOOLS, toolbox)
        up.script(*script)
        durable.run(_task(), "x", TOOLS, toolbox)  # the same step replayed: the same calls
        keys = [r.headers.get("idempotency-key") for r in up.requests]
    assert keys[:2] == [None, None]
    # <run>/<step workflow>/<turn>/<digest of the request>
    assert [k.rsplit("/", 1)[0] for k in keys[2:4]] == ["r1/r1~2:s1/0", "r1/r1~2:s1/1"]
    assert all(len(k.rsplit("/", 1)[1]) == 16 for k in keys[2:])
    # The same first call made again keeps its key (the second differs: the fake upstream
    # gives each tool call a new id, which the next request carries back).
    assert keys[4] == keys[2] and keys[5].startswith("r1/r1~2:s1/1/")


def test_turn_limit_stops_an_agent_that_never_finishes(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    turn = {"n": 0}

    def respond(request: RecordedRequest) -> Reply:
        turn["n"] += 1
        return Reply(tool_calls=[ToolCall("read_file", {"path": "a.txt", "start_line": turn["n"]})])

    with FakeUpstream.start() as up:
        up.responder = respond
        outcome = _runner(up, tmp_path, database).run(_task(max_turns=4), "x", TOOLS, toolbox)
    assert outcome.status == "turn_limit"
    assert outcome.model_calls == 4


def test_loop_detection_stops_the_same_call_with_the_same_result(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    with FakeUpstream.start() as up:
        up.responder = lambda r: Reply(tool_calls=[ToolCall("read_file", {"path": "a.txt"})])
        outcome = _runner(up, tmp_path, database).run(_task(max_corrections=1), "x", TOOLS, toolbox)
        last = up.requests[-1].json["messages"][-1]["content"][0]["content"]
    # Three identical calls, the model told once (the fourth call), then the step ends.
    assert outcome.status == "loop"
    assert outcome.model_calls == 4
    assert "same call 3 times" in last
    assert "repeated the same tool call with the same result 2 times" in outcome.summary


def test_budget_refusal_stops_the_agent_with_the_gateway_message(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    body = {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "budget 'run:r1' is exhausted"},
    }
    with FakeUpstream.start() as up:
        up.script(Fault(status=429, body=body))
        outcome = _runner(up, tmp_path, database).run(_task(), "x", TOOLS, toolbox)
    assert outcome.status == "budget"
    assert "budget 'run:r1' is exhausted" in outcome.summary


def test_tool_errors_go_back_to_the_model(
    tmp_path: Path, database: Database, toolbox: Toolbox
) -> None:
    with FakeUpstream.start() as up:
        up.script(
            Reply(tool_calls=[ToolCall("write_file", {"path": "../x", "content": ""})]),
            Reply(tool_calls=[ToolCall("run_command", {"argv": ["ls"]})]),
            Reply(tool_calls=[ToolCall("finish", {"summary": "gave up"})]),
        )
        outcome = _runner(up, tmp_path, database).run(_task(), "x", TOOLS, toolbox)
        second, third = up.requests[1].json, up.requests[2].json
    assert outcome.status == "finished"
    first_result = second["messages"][-1]["content"][0]
    assert first_result["is_error"] and "climbs out" in first_result["content"]
    refused = third["messages"][-1]["content"][0]
    assert refused["is_error"] and "not available to you" in refused["content"]
