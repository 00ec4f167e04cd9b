"""A pipeline worker process for crash tests: ``python -m tests.engine.worker ...``.

Arguments: state folder, repository, scripted upstream URL, run id, agents folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestra.demo import scripted_stack
from orchestra.engine.agents import RosterAgents
from orchestra.testing.scripted import SAMPLE_TASK


def main() -> None:
    home, repo, upstream_url, run_id, agents_dir = sys.argv[1:6]
    with scripted_stack(
        Path(home), upstream_url=upstream_url, agents=RosterAgents.load(Path(agents_dir))
    ) as stack:
        stack.runtime.start_run(SAMPLE_TASK, Path(repo), run_id=run_id)
        stack.runtime.wait(run_id, timeout_s=600)


if __name__ == "__main__":
    main()
