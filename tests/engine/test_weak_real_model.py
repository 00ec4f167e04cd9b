"""Agent steps against a weak real model: SmolLM2-135M-Instruct on llama-cpp-python's
server, through a real gateway (Anthropic Messages in, OpenAI chat to the server). Whatever
the model does — text instead of tool calls, malformed or unknown calls, replies cut at
``max_tokens``, the same call again and again — each step ends cleanly with its reason, at
a bounded cost. Slow and needs the ``local-model`` extra: ``make local-model`` (see
docs/testing.md); it prints what the model produced (recorded in docs/capacity.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestra.config import parse_config
from orchestra.engine import AgentRunner, AgentTask, ArtifactStore, HttpModelClient, RunStore
from orchestra.gateway import MemoryAccountant
from orchestra.store import open_database
from orchestra.testing.scripted import create_repository
from orchestra.tools import CommandLimits, Toolbox, Workspace
from tests.gateway.helpers import ServerThread, make_app
from tests.local_model import serve_llama

pytestmark = [pytest.mark.slow, pytest.mark.local_model]

TOOLS = ["read_file", "write_file", "finish"]
ENDINGS = {
    "finished",
    "turn_limit",
    "model_error",
    "loop",
    "malformed_call",
    "unknown_tool",
    "no_tool_call",
    "max_tokens",
}
"""Every way an agent step ends (``AgentOutcome.status``) bar ``budget`` (no budget here)."""
PROMPTS = [
    ("read", "Read the file a.txt with read_file, then call finish with its first word.", 256),
    ("write", "Use write_file to write the text hello to b.txt, then call finish.", 256),
    ("short", "Explain in detail what the file a.txt might contain, then finish.", 8),
]
"""(name, the step's message, max_tokens): the last one is cut off at every reply."""
MAX_TURNS = 6


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    # Agent steps carry a system prompt and tool schemas: more context than the capacity
    # test's 512 tokens.
    with serve_llama(tmp_path_factory.mktemp("llama"), "--n_ctx", "4096") as llama:
        config = (
            f"providers: {{llama: {{kind: openai, base_url: '{llama}/v1', timeout_s: 300}}}}\n"
            "models: {smollm2: {provider: llama}}\n"
            "gateway: {retry: {max_attempts: 1}}\n"
        )
        accountant = MemoryAccountant(prices={}, free_models=frozenset({"smollm2"}))
        key = accountant.add_key("weak-model", None)
        gateway = ServerThread(make_app(parse_config(config, environ={}), accountant)).start()
        try:
            yield gateway.base_url, key
        finally:
            gateway.stop()


@pytest.mark.parametrize(("name", "message", "max_tokens"), PROMPTS, ids=[p[0] for p in PROMPTS])
def test_each_step_of_the_weak_model_ends_cleanly_with_its_reason(
    gateway_url: tuple[str, str], tmp_path: Path, name: str, message: str, max_tokens: int
) -> None:
    url, key = gateway_url
    repo = create_repository(tmp_path / "repo", {"a.txt": "alpha beta\n"})
    toolbox = Toolbox(
        Workspace.create(repo, tmp_path / "wt", "orchestra/weak"),
        tmp_path / "h",
        ["true"],
        [],
        CommandLimits(timeout_s=5),
    )
    db = open_database(f"sqlite:///{tmp_path / 'o.db'}")
    client = HttpModelClient(url, key, retries=0)
    try:
        runs = RunStore(db)
        runs.start_step("s1", "r1", "green", "python-developer")
        artifacts = ArtifactStore(tmp_path / "home", db)
        task = AgentTask(
            run_id="r1",
            step_id="s1",
            phase="green",
            agent="python-developer",
            user_message=message,
            model="smollm2",
            max_turns=MAX_TURNS,
            max_tokens=max_tokens,
        )
        outcome = AgentRunner(client, artifacts, runs).run(
            task, "You are a careful developer.", TOOLS, toolbox
        )
        transcript = artifacts.get_json("r1", outcome.transcript_ref)
    finally:
        client.close()
        db.dispose()
    replies = [m["content"] for m in transcript["messages"] if m["role"] == "assistant"]
    print(  # what the weak model did (docs/capacity.md records it)
        json.dumps(
            {
                "prompt": name,
                "status": outcome.status,
                "summary": outcome.summary,
                "model_calls": outcome.model_calls,
                "usage": outcome.usage,
                "replies": replies,
            },
            default=str,
        )[:3000]
    )
    assert outcome.status in ENDINGS, outcome
    assert outcome.status != "model_error", outcome.summary  # the gateway path works
    assert outcome.status == "finished" or outcome.summary  # a reason, when not finished
    # Bounded: never more calls than turns, never more output than max_tokens per call.
    assert 1 <= outcome.model_calls <= MAX_TURNS
    assert outcome.usage["output_tokens"] <= outcome.model_calls * max_tokens
    assert transcript["status"] == outcome.status
