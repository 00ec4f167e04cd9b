"""A worker process for the slot tests (PostgreSQL): launches DBOS on the shared database
and starts the steps of :mod:`tests.engine.slot_harness` it is told to in its inbox
(``python -m tests.engine.slot_worker SPEC_JSON EXECUTOR``); exits once ``<inbox>/stop``
exists and its steps ended."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dbos import DBOS, SetWorkflowID

from orchestra.store import open_database
from tests.engine.slot_harness import bind, launch_dbos, org_slots, slot_step


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    executor = sys.argv[2]
    inbox, release = Path(spec["inbox"]), Path(spec["release"])
    database = open_database(spec["database_url"], migrate_schema=False)
    bind(org_slots(spec, executor, shared=True), database, release)
    launch_dbos(spec["system_url"], executor)
    (inbox / f"{executor}.ready").write_text("ready")
    handles = []
    seen: set[str] = set()
    while not (inbox / "stop").exists():
        for order in sorted(inbox.glob(f"{executor}--*.json")):
            if order.name in seen:
                continue
            seen.add(order.name)
            wanted = json.loads(order.read_text())
            for step in wanted["ids"]:
                with SetWorkflowID(step):
                    handles.append(
                        DBOS.start_workflow(slot_step, wanted["developer"], wanted.get("hold", 0))
                    )
        time.sleep(0.05)
    for handle in handles:
        handle.get_result(polling_interval_sec=0.05)
    DBOS.destroy(workflow_completion_timeout_sec=5)
    database.dispose()


if __name__ == "__main__":
    main()
