"""Cancelling a run: its workflows stop at their next step, its row says who cancelled it."""

from __future__ import annotations

from orchestra.engine.runs import FINAL_STATUSES, RunStore
from orchestra.errors import EngineError
from orchestra.store.tables.engine import RunRow


class RunAlreadyEnded(EngineError):
    """The run ended before it could be cancelled."""


def cancel_run(
    runs: RunStore, system_database_url: str, run_id: str, *, actor: str = "user"
) -> RunRow:
    """Cancel the run ``run_id`` (a unique prefix works): its pending DBOS workflows are
    cancelled and the run is marked ``cancelled``; its branch keeps what was done."""
    from dbos import DBOSClient

    row = runs.get(run_id)
    if row.status in FINAL_STATUSES:
        raise RunAlreadyEnded(
            f"run {row.id} already ended ({row.status})",
            hint="start a new run with `orchestra run`",
        )
    client = DBOSClient(system_database_url=system_database_url)
    try:
        for wf in client.list_workflows(workflow_id_prefix=row.id):
            if wf.status in {"PENDING", "ENQUEUED"}:
                client.cancel_workflow(wf.workflow_id)
    finally:
        client.destroy()
    runs.update(row.id, status="cancelled", failure_reason=f"cancelled by {actor}")
    return runs.get(row.id)
