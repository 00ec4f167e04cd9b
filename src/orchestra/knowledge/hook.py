"""Claude Code hook commands: ``python -m orchestra.knowledge.hook pre-compact|session-start``.

Claude Code runs a command hook with the event's JSON on stdin and reads its exit code:
0 is success (for SessionStart, stdout JSON with ``hookSpecificOutput.additionalContext``
adds context), 2 is a *blocking* error (for PreCompact it would stop compaction), any
other code is a non-blocking error shown to the user. These hooks must never stop the
user's work, so every failure exits 1, never 2. Each hook is time-bounded
(``knowledge.hooks.time_budget_s``): when the budget runs out it gives up and exits 1.

Heavy modules (LanceDB, the embedding model) are imported only inside the work, so a
malformed input is rejected in milliseconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from orchestra.errors import KnowledgeError

EXIT_OK = 0
EXIT_NON_BLOCKING = 1
MAX_INPUT_BYTES = 1_000_000
EVENTS = ("pre-compact", "session-start")
CONTEXT_KINDS = ("decision", "convention", "bug", "pattern", "api", "note")
"""Kinds SessionStart shows, most important first (code and doc chunks are too long)."""


class HookInputError(KnowledgeError):
    """The JSON Claude Code sent is missing or malformed."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(
            message,
            hint=hint
            or "this command is run by Claude Code as a hook, with the event's JSON on stdin; "
            "regenerate the hooks block with orchestra.knowledge.claude_code_hooks()",
        )


def project_for(cwd: str | None, configured: str | None = None) -> str:
    """The project namespace: configured, else the git repository root's folder name."""
    if configured:
        return configured
    folder = Path(cwd or os.getcwd()).resolve()
    try:
        top = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if top.returncode == 0 and top.stdout.strip():
            return Path(top.stdout.strip()).name
    except (OSError, subprocess.SubprocessError):
        pass
    return folder.name


def _read_input(stdin: TextIO) -> dict[str, Any]:
    raw = stdin.read(MAX_INPUT_BYTES + 1)
    if len(raw) > MAX_INPUT_BYTES:
        raise HookInputError("hook input is larger than 1 MB")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise HookInputError(f"hook input is not JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise HookInputError("hook input must be a JSON object")
    return data


def pre_compact(data: dict[str, Any], stdout: TextIO) -> int:
    """Store the decisions and facts of the transcript about to be compacted."""
    from orchestra.config.loader import load_config
    from orchestra.errors import KnowledgeError
    from orchestra.knowledge.models import Source
    from orchestra.knowledge.secrets import scrub
    from orchestra.knowledge.store import KnowledgeStore, NewEntry
    from orchestra.knowledge.transcript import extract_facts, read_transcript

    transcript = data.get("transcript_path")
    if not isinstance(transcript, str) or not transcript:
        raise HookInputError("PreCompact input has no transcript_path")
    path = Path(transcript).expanduser()
    if not path.is_file():
        raise HookInputError(
            f"transcript {path} does not exist",
            hint="Claude Code passes the transcript it is about to compact; a transcript "
            "that is gone was moved or deleted, and there is nothing to store from it",
        )
    config = load_config().knowledge
    project = project_for(data.get("cwd"), config.hooks.project)
    session = data.get("session_id") if isinstance(data.get("session_id"), str) else None
    facts = extract_facts(read_transcript(path))
    store = KnowledgeStore.open(config=config)
    source = Source(session=session, agent="claude-code", origin="hook")
    kept: list[NewEntry] = []
    refused = 0
    for fact in facts:
        try:
            scrub(fact.text, config.secrets)
        except KnowledgeError:
            refused += 1  # refused by the secret policy (e.g. a private key); never echoed
            continue
        kept.append(NewEntry(fact.text, fact.kind, project, source=source, tags=("claude-code",)))
    if kept:
        store.add_many(kept)  # one embedding batch, one write; known facts are stored once
    trigger = data.get("trigger", "unknown")
    print(
        f"orchestra: {len(kept)} facts from the transcript saved to project {project} "
        f"(trigger {trigger}; {refused} refused for secrets; repeats are stored once)",
        file=stdout,
    )
    return EXIT_OK


def session_start(data: dict[str, Any], stdout: TextIO) -> int:
    """Print the project's most important entries as additional context."""
    from orchestra.config.loader import load_config
    from orchestra.knowledge.store import KnowledgeStore

    config = load_config().knowledge
    project = project_for(data.get("cwd"), config.hooks.project)
    limit = config.hooks.session_start_entries
    if limit == 0:
        return EXIT_OK
    store = KnowledgeStore.open(config=config)
    entries = store.recent(project, CONTEXT_KINDS, limit=limit * 4)
    session = data.get("session_id")
    if isinstance(session, str) and session:
        # After a compaction (or a resume) the session's own facts matter most: they are
        # what the summary may have squeezed out. The sort is stable, so kind priority and
        # recency still order each group.
        entries.sort(key=lambda e: e.source.session != session)
    entries = entries[:limit]
    if not entries:
        return EXIT_OK
    lines = [f"Knowledge from earlier sessions of project {project} (orchestra kb):"]
    for entry in entries:
        where = f" [{entry.source.file}]" if entry.source.file else ""
        lines.append(f"- ({entry.kind}) {entry.text.strip()}{where}")
    output = {
        "hookSpecificOutput": {
            "hookEventName": "SessionStart",
            "additionalContext": "\n".join(lines),
        }
    }
    stdout.write(json.dumps(output))
    stdout.write("\n")
    return EXIT_OK


def run(event: str, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Run one hook; returns the exit code (0, or 1 for any failure; never 2)."""
    if event not in EVENTS:
        print(f"orchestra hook: unknown event {event!r}; use {' or '.join(EVENTS)}", file=stderr)
        return EXIT_NON_BLOCKING
    try:
        data = _read_input(stdin)
        handler = pre_compact if event == "pre-compact" else session_start
        return handler(data, stdout)
    except HookInputError as exc:
        print(f"orchestra hook {event}: {exc}", file=stderr)
        return EXIT_NON_BLOCKING
    except Exception as exc:
        # Never block the user's session over the knowledge store: report and move on.
        print(f"orchestra hook {event} failed: {type(exc).__name__}: {exc}", file=stderr)
        return EXIT_NON_BLOCKING


def _budget_seconds() -> float:
    raw = os.environ.get("ORCHESTRA_HOOK_TIME_BUDGET_S")
    if raw:
        try:
            return max(0.1, float(raw))
        except ValueError:
            pass
    try:
        from orchestra.config.loader import load_config

        return load_config().knowledge.hooks.time_budget_s
    except Exception:
        return 20.0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m orchestra.knowledge.hook EVENT``; see :func:`run_hook`."""
    args = sys.argv[1:] if argv is None else argv
    return run_hook(args[0] if args else "")


def run_hook(event: str) -> int:
    """Run the ``event`` hook on this process's standard streams in a worker thread, and give
    up when the time budget is spent; returns the exit code for Claude Code."""
    result: list[int] = []
    worker = threading.Thread(
        target=lambda: result.append(run(event, sys.stdin, sys.stdout, sys.stderr)),
        daemon=True,
    )
    worker.start()
    budget = _budget_seconds()
    worker.join(budget)
    if not result:
        print(f"orchestra hook {event}: gave up after {budget:.1f}s", file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(EXIT_NON_BLOCKING)  # the worker may be stuck in native code; do not wait
    return result[0]


if __name__ == "__main__":
    sys.exit(main())
