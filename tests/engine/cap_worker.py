"""A pipeline worker for tests/engine/test_global_cap.py: one scripted run on a shared
PostgreSQL database with a cap of 2 agents (``python -m tests.engine.cap_worker HOME REPO
DATABASE_URL RUN_ID AGENTS_DIR READY_FILE``); writes READY_FILE once its engine is up."""

from __future__ import annotations

import sys
from pathlib import Path

from orchestra.demo import scripted_stack
from orchestra.engine.agents import RosterAgents
from orchestra.testing.scripted import SAMPLE_TASK


def main() -> None:
    home, repo, url, run_id, agents_dir, ready = sys.argv[1:7]
    with scripted_stack(
        Path(home),
        database_url=url,
        agents=RosterAgents.load(Path(agents_dir)),
        latency_s=0.2,
        extra_yaml="engine: {max_concurrent_agents: 2}",
    ) as stack:
        Path(ready).write_text("ready")
        stack.runtime.start_run(SAMPLE_TASK, Path(repo), run_id=run_id)
        row = stack.runtime.wait(run_id, timeout_s=600)
    print(row.status, row.failure_reason or "")


if __name__ == "__main__":
    main()
