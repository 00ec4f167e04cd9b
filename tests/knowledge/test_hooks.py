"""Claude Code hooks, run the way Claude Code runs them: a subprocess, JSON on stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from orchestra.knowledge import KnowledgeStore, claude_code_hooks
from orchestra.knowledge.embeddings import LocalEmbedder
from orchestra.knowledge.hook import project_for
from orchestra.knowledge.transcript import extract_facts, read_transcript

SECRET = "sk-ant-api03-" + "Xq7RmT2pLk9WvB4nZs8DfH3jGc6Ya1Ue5Io0PxQw"


def write_transcript(path: Path) -> None:
    records: list[dict[str, Any]] = [
        {"type": "summary", "summary": "Earlier work"},
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": "My password is hunter2 and the api key is in 1Password.",
            },
        },
        {
            "type": "assistant",
            "message": {
                "role": "assistant",
                "content": [
                    {
                        "type": "text",
                        "text": (
                            "I checked the modules. We decided to keep refunds in their "
                            "own service so payments stay small.\n\n## Conventions\n"
                            "- Money is stored as integer cents, never floats.\n"
                            f"- Tests use the sandbox key {SECRET} from the fixtures.\n"
                        ),
                    },
                    {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}},
                ],
            },
        },
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": "We decided nothing here",
                    }
                ],
            },
        },
        {
            "type": "assistant",
            "message": {
                "role": "assistant",
                "content": "Root cause: the webhook handler was not idempotent.",
            },
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n{not json\n")


def run_hook(
    event: str, payload: Any, cwd: Path, env_extra: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, **(env_extra or {})}
    data = payload if isinstance(payload, str) else json.dumps(payload)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "orchestra.knowledge.hook", event],
        input=data,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )
    return done, time.perf_counter() - started


def test_extractor_keeps_marked_facts_and_ignores_credential_talk(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_transcript(path)
    facts = extract_facts(read_transcript(path))
    got = {(f.kind, f.text) for f in facts}
    assert (
        "decision",
        "We decided to keep refunds in their own service so payments stay small.",
    ) in got
    assert ("convention", "Money is stored as integer cents, never floats.") in got
    assert ("bug", "Root cause: the webhook handler was not idempotent.") in got
    # Mentioning a password or an API key is not a reason to store anything,
    # and tool output is not read at all.
    assert not any("hunter2" in t or "1Password" in t or "nothing here" in t for _, t in got)


def test_settings_block_shape() -> None:
    hooks = claude_code_hooks(python="/opt/venv/bin/python")
    assert set(hooks) == {"PreCompact", "SessionStart"}
    for event, arg in (("PreCompact", "pre-compact"), ("SessionStart", "session-start")):
        (group,) = hooks[event]
        (command,) = group["hooks"]
        assert command["type"] == "command"
        assert command["command"] == f"/opt/venv/bin/python -m orchestra.knowledge.hook {arg}"
        assert 0 < command["timeout"] <= 60


@pytest.mark.slow
def test_pre_compact_then_session_start(tmp_path: Path, embedder: LocalEmbedder) -> None:
    project_dir = tmp_path / "shop"
    project_dir.mkdir()
    transcript = tmp_path / "session.jsonl"
    write_transcript(transcript)
    payload = {
        "session_id": "sess-1",
        "transcript_path": str(transcript),
        "cwd": str(project_dir),
        "hook_event_name": "PreCompact",
        "trigger": "auto",
        "custom_instructions": "",
    }
    done, seconds = run_hook("pre-compact", payload, project_dir)
    assert done.returncode == 0, done.stderr
    assert "4 facts from the transcript saved to project shop" in done.stdout
    assert seconds < 30

    store = KnowledgeStore.open(Path(os.environ["ORCHESTRA_HOME"]) / "knowledge", embedder=embedder)
    entries = store.recent("shop", limit=20)
    assert len(entries) == 4
    assert all(e.source.session == "sess-1" and e.source.origin == "hook" for e in entries)
    assert not any(SECRET in e.text for e in entries)
    assert any("[REDACTED:anthropic_key]" in e.text for e in entries)
    # Compacting the same transcript again stores nothing new.
    again, _ = run_hook("pre-compact", payload, project_dir)
    assert again.returncode == 0 and len(store.recent("shop", limit=20)) == 4

    start = {
        "session_id": "sess-2",
        "cwd": str(project_dir),
        "hook_event_name": "SessionStart",
        "source": "startup",
    }
    done, seconds = run_hook("session-start", start, project_dir)
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    specific = output["hookSpecificOutput"]
    assert specific["hookEventName"] == "SessionStart"
    context = specific["additionalContext"]
    assert "We decided to keep refunds in their own service" in context
    assert context.index("(decision)") < context.index("(convention)") < context.index("(bug)")
    assert seconds < 20


def test_session_start_with_no_knowledge_prints_nothing(tmp_path: Path) -> None:
    done, _ = run_hook("session-start", {"cwd": str(tmp_path), "source": "startup"}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("event", "payload", "message"),
    [
        ("pre-compact", "{not json", "not JSON"),
        ("pre-compact", "[1, 2]", "JSON object"),
        ("pre-compact", {"trigger": "manual"}, "transcript_path"),
        ("pre-compact", {"transcript_path": "/nonexistent/t.jsonl"}, "does not exist"),
        ("unknown-event", {}, "unknown event"),
    ],
)
def test_failures_never_block_claude_code(
    tmp_path: Path, event: str, payload: Any, message: str
) -> None:
    done, seconds = run_hook(event, payload, tmp_path)
    # 2 would block compaction; a broken knowledge hook must never do that.
    assert done.returncode == 1
    assert message in done.stderr
    if event != "unknown-event":
        assert "fix: " in done.stderr  # bad input says how to put it right
    assert done.stdout == ""
    assert seconds < 10  # rejected before LanceDB or the model load


def test_hook_gives_up_when_its_time_budget_is_spent(tmp_path: Path) -> None:
    transcript = tmp_path / "t.jsonl"
    write_transcript(transcript)
    done, seconds = run_hook(
        "pre-compact",
        {"transcript_path": str(transcript), "cwd": str(tmp_path)},
        tmp_path,
        {"ORCHESTRA_HOOK_TIME_BUDGET_S": "0.2"},
    )
    assert done.returncode == 1
    assert "gave up after 0.2s" in done.stderr
    assert seconds < 10


def test_project_is_the_git_root_name(tmp_path: Path) -> None:
    repo = tmp_path / "my-repo"
    (repo / "sub").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert project_for(str(repo / "sub")) == "my-repo"
    assert project_for(str(tmp_path)) == tmp_path.name
    assert project_for(str(repo), "configured") == "configured"


def test_session_start_puts_the_sessions_own_facts_first(
    tmp_path: Path, embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from orchestra.config.loader import load_config
    from orchestra.knowledge import Source
    from orchestra.knowledge.hook import run

    store = KnowledgeStore.open(load_config().knowledge.path or None, embedder=embedder)
    store.add("We decided the API is versioned in the URL path.", "decision", "shop")
    store.add(
        "Note: the staging database is reset every night.",
        "note",
        "shop",
        source=Source(session="sess-9", origin="hook"),
    )
    monkeypatch.setenv("ORCHESTRA__KNOWLEDGE__HOOKS__SESSION_START_ENTRIES", "1")
    monkeypatch.setenv("ORCHESTRA__KNOWLEDGE__HOOKS__PROJECT", "shop")
    for session, expected in (("sess-9", "staging database"), ("other", "versioned")):
        out = io.StringIO()
        payload = json.dumps({"session_id": session, "source": "compact", "cwd": str(tmp_path)})
        assert run("session-start", io.StringIO(payload), out, io.StringIO()) == 0
        context = json.loads(out.getvalue())["hookSpecificOutput"]["additionalContext"]
        assert expected in context
