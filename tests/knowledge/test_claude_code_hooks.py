"""The hooks under the real Claude Code CLI, talking to the fake upstream on loopback.

Session 1 states a decision; ``/compact`` fires PreCompact, which stores it; session 2
starts, SessionStart adds it to the context, and the model request carries it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from orchestra.knowledge import KnowledgeStore, claude_code_hooks
from orchestra.knowledge.embeddings import LocalEmbedder
from orchestra.testing import FakeUpstream, Reply
from orchestra.testing.claude_code import find_claude_code, offline_env

CLAUDE = find_claude_code()
DECISION = "We decided to keep refunds in their own service so payments stay small."


@pytest.mark.slow
@pytest.mark.claude_code
@pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed (make test installs it)")
def test_pre_compact_and_session_start_under_claude_code(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    assert CLAUDE is not None
    project = tmp_path / "billing"
    (project / ".claude").mkdir(parents=True)
    (project / ".claude" / "settings.json").write_text(json.dumps({"hooks": claude_code_hooks()}))
    home = tmp_path / "home"
    home.mkdir()
    with FakeUpstream.start() as upstream:
        upstream.script(
            Reply(text=f"Done. {DECISION}"),
            Reply(text="<summary>We split refunds out of payments.</summary>"),
            Reply(text="Refunds live in their own service."),
        )
        env = offline_env(upstream.base_url, home, ORCHESTRA_HOME=os.environ["ORCHESTRA_HOME"])

        def claude(*args: str) -> dict[str, object]:
            done = subprocess.run(
                [CLAUDE, "-p", *args, "--output-format", "json"],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            assert done.returncode == 0, done.stderr[-2000:]
            result: dict[str, object] = json.loads(done.stdout)
            return result

        first = claude("split refunds out of the payments service")
        session = str(first["session_id"])
        # The store was empty: SessionStart added nothing to the first request.
        assert DECISION not in json.dumps(upstream.requests[0].json)

        claude("/compact", "--resume", session)
        store = KnowledgeStore.open(
            Path(os.environ["ORCHESTRA_HOME"]) / "knowledge", embedder=embedder
        )
        (entry,) = store.recent("billing", limit=10)
        assert (entry.kind, entry.text) == ("decision", DECISION)
        assert entry.source.session == session and entry.source.origin == "hook"

        claude("where do refunds live?")
        last = json.dumps(upstream.requests[-1].json)
        assert "Knowledge from earlier sessions of project billing" in last
        assert DECISION in last
