"""Run the fake upstream as its own process.

``python -m orchestra.testing.upstream --port 8089 [--script steps.json] [--api-key KEY]``

Prints ``listening on http://HOST:PORT`` once it accepts connections (with ``--port 0``, read
the port from that line). Script it at run time through ``POST /_fake/script``; see
``docs/testing.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestra.testing.server import FakeUpstream, UpstreamOptions
from orchestra.testing.steps import ScriptError, load_script


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m orchestra.testing.upstream",
        description="Fake Anthropic/OpenAI upstream for tests, benchmarks and offline demos.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    parser.add_argument("--script", type=Path, help="JSON file of steps to queue at start")
    parser.add_argument("--api-key", help="require this key (x-api-key or Bearer)")
    parser.add_argument(
        "--max-recorded",
        type=int,
        default=1000,
        help="keep only the latest N requests for /_fake/requests (bounded memory)",
    )
    parser.add_argument("--text", help="text of the default reply")
    args = parser.parse_args(argv)
    steps = []
    if args.script is not None:
        try:
            steps = load_script(args.script)
        except ScriptError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    def ready(upstream: FakeUpstream) -> None:
        upstream.script_entries(steps)
        print(f"listening on {upstream.base_url}", flush=True)

    options: UpstreamOptions = {"api_key": args.api_key, "max_recorded": args.max_recorded}
    if args.text is not None:
        options["default_text"] = args.text
    try:
        FakeUpstream.serve_forever(args.host, args.port, on_ready=ready, **options)
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        print("  fix: pick a free port (--port 0 picks one for you)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
