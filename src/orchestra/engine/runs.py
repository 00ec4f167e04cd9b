"""The engine's bookkeeping: runs and steps in the application database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from orchestra.engine.artifacts import utcnow
from orchestra.errors import EngineError
from orchestra.providers import Usage
from orchestra.store import Database
from orchestra.store.tables.engine import RunRow, StepRow

ACTIVE_STATUSES = frozenset({"queued", "running"})
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


BUDGET_STOP = "budget exhausted during "
"""How the failure reason of a run stopped by a budget starts."""


def resume_command(run_id: str) -> str:
    """The command that continues ``run_id`` with a higher budget."""
    return f"orchestra resume {run_id} --budget USD"


def budget_stop(run_id: str, step_id: str, detail: str) -> str:
    """The failure reason of a run stopped by a budget in step ``step_id``: the gateway's
    refusal and the exact command that continues the run with a higher budget."""
    command = resume_command(run_id)
    detail = detail.replace(resume_command("RUN"), command)  # the gateway's run-budget hint
    if command in detail:
        return f"{BUDGET_STOP}{step_id}: {detail}"
    detail = detail.rstrip(". ")
    return f"{BUDGET_STOP}{step_id}: {detail}. Continue it with a higher budget: {command}"


def stopped_by_budget(row: RunRow) -> bool:
    """Whether ``row`` failed because a budget ran out (it can be continued)."""
    return row.status == "failed" and (row.failure_reason or "").startswith(BUDGET_STOP)


def step_key(run_id: str, step_id: str) -> str:
    """Primary key of a step row: step names repeat across runs (``plan-1``)."""
    return f"{run_id}/{step_id}"


class RunNotFound(EngineError):
    """No run has this id."""


@dataclass
class RunStore:
    """Reads and writes :class:`RunRow` and :class:`StepRow`."""

    database: Database
    clock: Callable[[], datetime] = utcnow

    def create(self, **fields: Any) -> RunRow:
        now = self.clock()
        row = RunRow(created_at=now, updated_at=now, **fields)
        with self.database.session() as session:
            session.add(row)
        return row

    def get(self, run_id: str) -> RunRow:
        with self.database.session() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                matches = list(
                    session.scalars(
                        select(RunRow).where(RunRow.id.startswith(run_id, autoescape=True))
                    )
                )
                if len(matches) == 1:
                    return matches[0]
                raise RunNotFound(f"no run {run_id!r}", hint="list runs with `orchestra runs`")
            return row

    def list_runs(self, limit: int = 50) -> list[RunRow]:
        with self.database.session() as session:
            return list(
                session.scalars(select(RunRow).order_by(RunRow.created_at.desc()).limit(limit))
            )

    def update(self, run_id: str, **fields: Any) -> None:
        with self.database.session() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise RunNotFound(f"no run {run_id!r}", hint="list runs with `orchestra runs`")
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = self.clock()

    def start_step(self, step_id: str, run_id: str, phase: str, agent: str) -> None:
        """Record that a step started (idempotent: a replayed step keeps its first start)."""
        with self.database.session() as session:
            row = session.get(StepRow, step_key(run_id, step_id))
            if row is None:
                session.add(
                    StepRow(
                        id=step_key(run_id, step_id),
                        step=step_id,
                        run_id=run_id,
                        phase=phase,
                        agent=agent,
                        status="running",
                        model_calls=0,
                        input_tokens=0,
                        output_tokens=0,
                        cache_read_tokens=0,
                        cache_write_tokens=0,
                        started_at=self.clock(),
                    )
                )

    def set_usage(self, run_id: str, step_id: str, usage: Usage, calls: int, model: str) -> None:
        """Set a step's totals so far (absolute values, so a replay cannot double count)."""
        with self.database.session() as session:
            row = session.get(StepRow, step_key(run_id, step_id))
            if row is None:
                return
            row.model_calls = calls
            row.input_tokens = usage.input_tokens
            row.output_tokens = usage.output_tokens
            row.cache_read_tokens = usage.cache_read_tokens
            row.cache_write_tokens = usage.cache_write_tokens
            row.model = model or row.model

    def finish_step(
        self,
        run_id: str,
        step_id: str,
        *,
        status: str,
        stop_reason: str | None = None,
        summary: str | None = None,
        transcript_ref: str | None = None,
    ) -> None:
        with self.database.session() as session:
            row = session.get(StepRow, step_key(run_id, step_id))
            if row is None:
                return
            row.status = status
            row.stop_reason = stop_reason
            row.summary = summary
            row.transcript_ref = transcript_ref
            row.finished_at = self.clock()

    def steps(self, run_id: str) -> list[StepRow]:
        with self.database.session() as session:
            return list(
                session.scalars(
                    select(StepRow).where(StepRow.run_id == run_id).order_by(StepRow.started_at)
                )
            )
