"""Ledger entries: one per model call, and the forms they take (the ``gateway_ledger``
row, the journal's JSON).

**Journal forms.** A finished call is journaled as its row: the values of :data:`COLUMNS`
in order (the id first), times as ISO-8601 text in UTC (``YYYY-MM-DD HH:MM:SS.ffffff``, the
text SQLite stores), the cost in integer nano-dollars, the fallback path as stored
(``" > "``-joined). A stream's draft is journaled in its :meth:`LedgerEntry.to_json` form.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from orchestra.accounting.attribution import Attribution
from orchestra.accounting.budgets import Reservation
from orchestra.accounting.money import from_nano, to_nano
from orchestra.accounting.store import RowInsert, as_utc, sqlite_time
from orchestra.providers.usage import Usage

Outcome = Literal[
    "ok", "error", "client_disconnected", "budget_refused", "rate_limited", "reconciled"
]
OUTCOMES: tuple[str, ...] = (
    "ok",
    "error",
    "client_disconnected",
    "budget_refused",
    "rate_limited",
    "reconciled",
)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One model call."""

    attribution: Attribution
    requested_model: str | None = None
    served_model: str | None = None
    provider: str | None = None
    tier: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal | None = None
    """``None``: the ledger computes it from the price table for ``served_model``."""
    outcome: str = "ok"
    """One of :data:`OUTCOMES`."""
    error_type: str | None = None
    """For ``error``: what failed (e.g. ``upstream_529``, ``timeout``, ``invalid_request``)."""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    """Time to first token of a streamed reply."""
    retries: int = 0
    fallback_path: tuple[str, ...] = ()
    """Every attempt in order, e.g. ``("claude-opus-4-5:529", "claude-sonnet-4-5:ok")``."""
    stream: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the inverse of :meth:`from_json`)."""
        # Written out rather than dataclasses.asdict(): asdict deep-copies every field and
        # showed up as a few percent of the request path (one journal line per call).
        a, u = self.attribution, self.usage
        return {
            "attribution": a.as_dict(),
            "requested_model": self.requested_model,
            "served_model": self.served_model,
            "provider": self.provider,
            "tier": self.tier,
            "usage": [u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens],
            "cost_usd": str(self.cost_usd) if self.cost_usd is not None else None,
            "outcome": self.outcome,
            "error_type": self.error_type,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "retries": self.retries,
            "fallback_path": list(self.fallback_path),
            "stream": self.stream,
            "id": self.id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LedgerEntry:
        return cls(
            attribution=Attribution(**data["attribution"]),
            requested_model=data.get("requested_model"),
            served_model=data.get("served_model"),
            provider=data.get("provider"),
            tier=data.get("tier"),
            usage=Usage(*data.get("usage", [0, 0, 0, 0])),
            cost_usd=Decimal(data["cost_usd"]) if data.get("cost_usd") is not None else None,
            outcome=data.get("outcome", "ok"),
            error_type=data.get("error_type"),
            started_at=datetime.fromisoformat(data["started_at"])
            if data.get("started_at")
            else None,
            ended_at=datetime.fromisoformat(data["ended_at"]) if data.get("ended_at") else None,
            latency_ms=data.get("latency_ms"),
            ttft_ms=data.get("ttft_ms"),
            retries=data.get("retries", 0),
            fallback_path=tuple(data.get("fallback_path", ())),
            stream=data.get("stream", False),
            id=data["id"],
        )


COLUMNS = (
    "id",
    "started_at",
    "ended_at",
    "org",
    "division",
    "tribe",
    "squad",
    "developer",
    "key_id",
    "agent",
    "run_id",
    "step",
    "tier",
    "requested_model",
    "served_model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_nano",
    "latency_ms",
    "ttft_ms",
    "retries",
    "fallback_path",
    "outcome",
    "error_type",
    "stream",
)
# Fixed SQL text on the hot path: no statement building or cache-key work per entry.
INSERT = RowInsert("gateway_ledger", COLUMNS)
COST = COLUMNS.index("cost_nano")


def _not_json(value: object) -> Any:
    raise TypeError(f"not a JSON value in a journal row: {value!r}")


def _flat_encoder() -> Callable[[object], str]:
    """The encoder of ``row`` lines: only JSON's own types (a Decimal or datetime there is a
    bug, not text), compact, ASCII. The C encoder is made once and called directly: going
    through ``JSONEncoder.encode`` makes a new one per call, a third of the encoding time."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(
            separators=(",", ":"), check_circular=False, default=_not_json
        ).encode
    encode = make(
        None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )
    return lambda value: "".join(encode(value, 0))


FLAT = _flat_encoder()
"""Encodes a journal line's values (compact, ASCII, JSON's own types only)."""


def entry_row(e: LedgerEntry, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The entry's ``gateway_ledger`` row, in :data:`COLUMNS` order; ``time`` puts a
    datetime in the column's form (:func:`~orchestra.accounting.store.time_for`). A draft
    (a call not finished yet) ends when it started and costs nothing so far."""
    a, u = e.attribution, e.usage
    assert e.started_at is not None
    return (
        e.id,
        time(e.started_at),
        time(e.ended_at or e.started_at),
        a.org,
        a.division,
        a.tribe,
        a.squad,
        a.developer,
        a.key_id,
        a.agent,
        a.run_id,
        a.step,
        e.tier,
        e.requested_model,
        e.served_model,
        e.provider,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        to_nano(e.cost_usd) if e.cost_usd is not None else 0,
        e.latency_ms,
        e.ttft_ms,
        e.retries,
        " > ".join(e.fallback_path),
        e.outcome,
        e.error_type,
        e.stream,
    )


def portable_row(row: tuple[Any, ...]) -> tuple[Any, ...] | list[Any]:
    """A :func:`entry_row` as a ``row`` journal line holds it: the same values, the two times as
    UTC text (SQLite's rows have them so already, and are used as they are)."""
    started, ended = row[1], row[2]
    if type(started) is str:
        return row
    out = list(row)
    out[1] = sqlite_time(started)
    out[2] = sqlite_time(ended)
    return out


def row_json(row: tuple[Any, ...]) -> str:
    """A :func:`entry_row` as JSON text, as a ``row`` journal line holds it
    (:func:`portable_row`)."""
    return FLAT(portable_row(row))


def _utc(text: str) -> datetime:
    """A journaled time: UTC unless the text says otherwise."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def entry_from_values(v: list[Any]) -> LedgerEntry:
    """A :class:`LedgerEntry` from a ``row`` journal line's values (:data:`COLUMNS` order)."""
    (
        eid,
        started,
        ended,
        org,
        division,
        tribe,
        squad,
        developer,
        key_id,
        agent,
        run_id,
        step,
        tier,
        requested_model,
        served_model,
        provider,
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        cost_nano,
        latency_ms,
        ttft_ms,
        retries,
        fallback_path,
        outcome,
        error_type,
        stream,
    ) = v
    return LedgerEntry(
        attribution=Attribution(
            org, division, tribe, squad, developer, key_id, agent, run_id, step
        ),
        requested_model=requested_model,
        served_model=served_model,
        provider=provider,
        tier=tier,
        usage=Usage(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens),
        cost_usd=from_nano(cost_nano),
        outcome=outcome,
        error_type=error_type,
        started_at=_utc(started),
        ended_at=_utc(ended),
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        retries=retries,
        fallback_path=tuple(p for p in fallback_path.split(" > ") if p),
        stream=bool(stream),
        id=eid,
    )


def entry_from_row(r: Any) -> LedgerEntry:
    """A :class:`LedgerEntry` from a ``gateway_ledger`` row."""
    return LedgerEntry(
        attribution=Attribution(
            r.org, r.division, r.tribe, r.squad, r.developer, r.key_id, r.agent, r.run_id, r.step
        ),
        requested_model=r.requested_model,
        served_model=r.served_model,
        provider=r.provider,
        tier=r.tier,
        usage=Usage(r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens),
        cost_usd=from_nano(r.cost_nano),
        outcome=r.outcome,
        error_type=r.error_type,
        started_at=as_utc(r.started_at),
        ended_at=as_utc(r.ended_at),
        latency_ms=r.latency_ms,
        ttft_ms=r.ttft_ms,
        retries=r.retries,
        fallback_path=tuple(p for p in r.fallback_path.split(" > ") if p),
        stream=r.stream,
        id=r.id,
    )


def reservation_json(r: Reservation | None) -> dict[str, Any] | None:
    # The budgets' own journal form: a leased hold keeps its lease id.
    return None if r is None or r.empty else r.as_json()


def reservation_from(data: dict[str, Any] | None) -> Reservation | None:
    return Reservation.from_json(data) if data else None
