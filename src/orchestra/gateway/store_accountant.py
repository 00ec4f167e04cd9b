"""The gateway's :class:`~orchestra.gateway.accounts.Accountant` over the database
(:mod:`orchestra.accounting`): keys, rate limits, budgets, prices, ledger, audit."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from orchestra.accounting import (
    Accounting,
    Attribution,
    BudgetExceeded,
    LedgerEntry,
    RateLimited,
    StreamRecord,
    UnknownPrice,
    spend_report,
)
from orchestra.gateway.accounts import Caller, CallRecord, Holding, StreamJournal
from orchestra.gateway.errors import LimitRefused, UnpricedModel
from orchestra.providers.usage import Usage

log = logging.getLogger("orchestra.gateway")

_OUTCOMES = {
    "ok": "ok",
    "client_disconnected": "client_disconnected",
    "budget_refused": "budget_refused",
    "rate_limited": "rate_limited",
}


def _attribution(record: CallRecord) -> Attribution:
    """The caller's attribution completed with the call's agent, run and step."""
    base = record.caller.attribution
    if not isinstance(base, Attribution):
        base = Attribution(developer=record.caller.developer, squad=record.caller.team)
    if record.agent is None and record.run_id is None and record.step is None:
        return base  # nothing to fill in: no copy
    return base.for_call(agent=record.agent, run_id=record.run_id, step=record.step)


def ledger_entry(record: CallRecord) -> LedgerEntry:
    """The ledger's view of a call record (attribution completed with agent, run, step)."""
    attribution = _attribution(record)
    outcome = _OUTCOMES.get(record.outcome, "error")
    error_type = record.error if outcome in ("budget_refused", "rate_limited") else None
    if outcome == "error":
        error_type = (
            record.outcome if record.status is None else f"{record.outcome}_{record.status}"
        )
    path = tuple(
        f"{a.model}:{a.status if a.status is not None else a.error}"
        if a.error or (a.status or 0) >= 400
        else f"{a.model}:ok"
        for a in record.attempts
    )
    if record.rule is not None:
        path = (f"rule {record.rule}", *path)  # which routing rule chose the chain
    started, latency = record.started_at, record.latency_ms
    return LedgerEntry(
        attribution=attribution,
        requested_model=record.requested_model,
        served_model=record.served_model,
        provider=record.provider,
        tier=record.tier,
        usage=record.usage,
        cost_usd=record.cost_usd,
        outcome=outcome,
        error_type=error_type,
        started_at=started,
        # Complete, so the ledger has nothing to fill in (no copy of the entry there).
        ended_at=started + timedelta(milliseconds=latency)
        if started is not None and latency is not None
        else None,
        latency_ms=latency,
        ttft_ms=record.ttft_ms,
        retries=max(0, len(record.attempts) - 1),
        fallback_path=path,
        stream=record.stream,
        id=record.request_id,
    )


_NOTHING = Decimal(0)


def rate_limit_refusal(exc: RateLimited) -> LimitRefused:
    """The 429 a rate limit of :mod:`orchestra.accounting.limits` answers with."""
    return LimitRefused(
        exc.message, hint=exc.hint, retry_after_s=exc.retry_after_s, code="rate_limit_exceeded"
    )


def _draft(record: CallRecord) -> LedgerEntry:
    """The ledger's view of a call before its upstream request: who, what was asked, when
    (what :func:`ledger_entry` builds, without what only a finished call has)."""
    return LedgerEntry(
        _attribution(record),
        record.requested_model,
        tier=record.tier,
        cost_usd=_NOTHING,
        started_at=record.started_at,
        stream=record.stream,
        id=record.request_id,
    )


@dataclass
class _Journal:
    stream: StreamRecord

    def progress(self, usage: Usage, cost_usd: Decimal) -> None:
        self.stream.progress(usage)

    async def close(self, record: CallRecord) -> None:
        entry = ledger_entry(record)
        await self.stream.afinish(
            usage=entry.usage,
            cost_usd=entry.cost_usd,
            outcome=entry.outcome,
            error_type=entry.error_type,
            served_model=entry.served_model,
            provider=entry.provider,
            latency_ms=entry.latency_ms,
            ttft_ms=entry.ttft_ms,
            retries=entry.retries,
            fallback_path=entry.fallback_path,
            stream=entry.stream,
        )


class StoreAccountant:
    """Accounting backed by the database: what ``orchestra gateway`` runs with."""

    def __init__(self, accounting: Accounting) -> None:
        self.accounting = accounting
        shared = accounting.config.gateway.limits.shared
        # Rate-limit counters live in memory on SQLite (cheap: on the loop) and in the
        # database on PostgreSQL (shared by workers: on a thread); with gateway.shared_state
        # the gateway counts them in Redis (Gateway.admit), and they are not counted here.
        self._limits_in_db = shared if shared is not None else accounting.store.dialect != "sqlite"
        self._limits_here = accounting.config.gateway.shared_state is None

    def authenticate(self, secret: str) -> Caller | None:
        record = self.accounting.keys.authenticate(secret)
        if record is None:
            return None
        return Caller(
            key_id=record.id,
            developer=record.developer,
            team=record.team,
            admin=record.admin,
            attribution=record.attribution(),
            run_id=record.run_id,
        )

    def keys_version(self) -> int:
        return self.accounting.keys.version()

    def check_limits(self, caller: Caller, tokens: int) -> None:
        try:
            self.accounting.limits.check_and_count(caller.attribution, tokens)
        except RateLimited as exc:
            raise rate_limit_refusal(exc) from exc

    def cost(self, model: str, usage: Usage) -> Decimal:
        try:
            return self.accounting.prices.cost(model, usage)
        except UnknownPrice as exc:
            # Unknown is never free: $0 here would let the call past every dollar budget.
            raise UnpricedModel(model) from exc

    def price_known(self, model: str) -> bool:
        return self.accounting.prices.knows(model)

    async def admit(
        self, caller: Caller, run_id: str | None, model: str, tokens: int, usd: Decimal
    ) -> Any:
        if self._limits_here and self._limits_in_db:
            await asyncio.to_thread(self.check_limits, caller, tokens)
        elif self._limits_here:
            self.check_limits(caller, tokens)
        if usd <= 0:
            return None  # $0 calls are never blocked by a dollar budget
        attribution = caller.attribution
        if not isinstance(attribution, Attribution):
            attribution = Attribution(developer=caller.developer, squad=caller.team)
        try:
            return await self.accounting.budgets.areserve(
                attribution.for_call(run_id=run_id), model, usd
            )
        except BudgetExceeded as exc:
            raise LimitRefused(
                exc.message,
                hint=exc.hint,
                retry_after_s=getattr(exc, "retry_after_s", None),
                code="budget_exceeded",
            ) from exc

    def refused(self, record: CallRecord, refusal: LimitRefused) -> None:
        # Fire-and-forget: the row rides along with the writer's next batch, with no
        # journal line (a refusal costs nothing, so a crash within the batch delay loses
        # no money); a client over its limit may call in a loop, so this stays cheap.
        record.outcome = "budget_refused" if refusal.code == "budget_exceeded" else "rate_limited"
        record.status = 429
        record.error = refusal.code
        if record.latency_ms is None:  # complete: the ledger then copies nothing
            elapsed = self.accounting.ledger.clock() - record.started_at
            record.latency_ms = max(elapsed.total_seconds() * 1000, 0.0)
        try:
            self.accounting.ledger.queue(ledger_entry(record))
        except Exception:
            log.exception("the refusal of call %s has no ledger entry", record.request_id)

    def journal_call(self, reservation: Any, record: CallRecord) -> None:
        try:
            self.accounting.ledger.open_call(_draft(record), reservation=reservation)
        except Exception:
            log.exception(
                "call %s not journaled before its upstream request: a crash during it would "
                "leave no entry",
                record.request_id,
            )

    async def finish(self, reservation: Any, record: CallRecord) -> None:
        ledger = self.accounting.ledger
        entry = await ledger.aappend(ledger_entry(record), reservation=reservation)
        ledger.end_open(entry.id)  # committed: its open line (journal_call) is done

    def journal_and_queue(self, reservation: Any, record: CallRecord) -> bool:
        # One journal line (an O_APPEND write, survives SIGKILL) makes the entry durable;
        # the database commit, which settles the reservation too, rides along with the
        # writer's next batch: no task, no future, nothing for the event loop to await.
        self.accounting.ledger.journal_and_queue(ledger_entry(record), reservation=reservation)
        return True

    def open_stream(self, draft: CallRecord, reservation: Any) -> StreamJournal:
        # Same id as the call's open line (journal_call): this one, with the served model
        # and provider, takes its place.
        stream = self.accounting.ledger.open_stream(ledger_entry(draft), reservation=reservation)
        return _Journal(stream)

    def reconcile_incomplete(self) -> int:
        self.accounting.keys.watch()  # follow key changes from the first request on
        return len(self.accounting.start())

    def spend(self, developer: str | None) -> dict[str, Any]:
        self.accounting.ledger.flush()  # this process's queued calls count too
        report = spend_report(self.accounting.store, by="model", developer=developer)
        result = report.to_json()
        result["developer"] = developer
        return result

    def headroom(self) -> list[tuple[str, Decimal]]:
        return [(s.spec.name, s.remaining_usd) for s in self.accounting.budgets.status()]

    def healthy(self) -> bool:
        try:
            with self.accounting.store.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def exposition(self) -> str:
        try:
            ledger = self.accounting.ledger
            return (
                "# HELP orchestra_ledger_quarantined_total Journal records moved to quarantine "
                "at start-up (they could not be stored; see the log).\n"
                "# TYPE orchestra_ledger_quarantined_total counter\n"
                f"orchestra_ledger_quarantined_total {ledger.quarantined}\n"
                "# HELP orchestra_ledger_unreadable_rows_total Damaged ledger rows read "
                "(reported, read with their bad bytes escaped).\n"
                "# TYPE orchestra_ledger_unreadable_rows_total counter\n"
                f"orchestra_ledger_unreadable_rows_total {ledger.unreadable_rows}\n"
            )
        except Exception:
            log.exception("ledger counters unavailable for /metrics")
            return ""

    def audit(self, caller: Caller, action: str, target: str, details: dict[str, Any]) -> None:
        self.accounting.audit.append(f"key:{caller.key_id}", action, target, details)

    def open_run(
        self, caller: Caller, run_id: str, budget_usd: Decimal | None, holding: Holding = None
    ) -> str:
        secret, _record = self.accounting.runs.open(
            caller.developer,
            caller.team,
            run_id,
            budget_usd,
            actor=f"key:{caller.key_id}",
            holding=holding,
        )
        return secret

    def end_run(self, caller: Caller, run_id: str) -> int:
        return self.accounting.runs.end(
            run_id,
            developer=None if caller.admin else caller.developer,
            actor=f"key:{caller.key_id}",
        )
