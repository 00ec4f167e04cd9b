"""A worker process for tests/engine/test_slots.py: launches DBOS on a shared system
database and runs N workflows that each hold an organisation-wide agent slot for a while,
logging when each held it (``python -m tests.engine.slot_worker URL DEV LOG N HOLD_S``)."""

from __future__ import annotations

import json
import os
import sys
import time

from dbos import DBOS

from orchestra.engine.slots import OrgSlots, agent_slot, register_slot_queue


def main() -> None:
    url, developer, log, count, hold = sys.argv[1:6]
    slots = OrgSlots(capacity=3, per_developer=2, developer=developer)

    @DBOS.workflow(name="tests.held_slot")
    def held(i: int) -> None:
        with agent_slot(slots, 0.02):
            start = time.time()
            time.sleep(float(hold))
            end = time.time()
        with open(log, "a") as out:
            out.write(json.dumps([developer, start, end]) + "\n")

    DBOS(
        config={
            "name": "orchestra",
            "system_database_url": url,
            "executor_id": f"slot-test-{os.getpid()}",
            "application_version": "slot-test",
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    register_slot_queue(slots, 0.05)
    handles = [DBOS.start_workflow(held, i) for i in range(int(count))]
    for handle in handles:
        handle.get_result(polling_interval_sec=0.05)
    DBOS.destroy(workflow_completion_timeout_sec=5)


if __name__ == "__main__":
    main()
