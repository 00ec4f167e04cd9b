"""Entries the database cannot refuse: every value bounded and escaped at the ledger's door.

The gateway validates what clients send, but the ledger must never depend on it: one row
the database refuses would stay in the journal and be retried, and refused again, at every
start. So before an entry is stored (or journaled as a row) its text fields are made valid
for both backends: a lone surrogate (not a Unicode scalar value, which SQLite cannot encode)
and a NUL (which PostgreSQL refuses in text) are written as their backslash escapes, and a
value longer than its column is cut to fit, ending in ``…``. Counts are kept within
``BIGINT``, times in milliseconds are finite or none. An entry that needs none of this is
returned as it is (no copy): the common case costs a few string checks.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlalchemy import String

from orchestra.accounting.ledger.entries import LedgerEntry
from orchestra.accounting.money import from_nano
from orchestra.providers.usage import Usage
from orchestra.store.tables.gateway import GatewayLedgerEntry

_LIMITS: dict[str, int] = {
    c.name: int(c.type.length)
    for c in GatewayLedgerEntry.__table__.columns
    if isinstance(c.type, String) and c.type.length
}
"""Column name -> its length in characters (``String(n)`` columns)."""
_ATTRIBUTION = (
    "org",
    "division",
    "tribe",
    "squad",
    "developer",
    "key_id",
    "agent",
    "run_id",
    "step",
)
_TEXT = ("requested_model", "served_model", "provider", "tier", "error_type")
BIGINT = 2**63 - 1
_MAX_PATH_STEPS = 32
_MAX_COST = from_nano(BIGINT)


def clean_text(value: str, limit: int | None) -> str:
    """``value`` with lone surrogates and NULs escaped, cut to ``limit`` characters."""
    text = value
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _encodable(value: str) -> bool:
    """Whether ``value`` is valid Unicode scalar values (no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fits(value: str | None, limit: int | None) -> bool:
    """Whether ``value`` needs no repair (the fast check; a non-ASCII value is checked by
    repairing it and comparing)."""
    if value is None:
        return True
    if limit is not None and len(value) > limit:
        return False
    if value.isascii():
        return "\x00" not in value
    return clean_text(value, limit) == value


def _count(value: int) -> int:
    return value if 0 <= value <= BIGINT else max(0, min(int(value), BIGINT))


def _ms(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def bounded(entry: LedgerEntry) -> LedgerEntry:
    """``entry`` with every value the database could refuse repaired (see the module
    docstring); ``entry`` itself when nothing needed repair."""
    if _clean(entry):
        return entry
    return _repaired(entry)


def _clean(entry: LedgerEntry) -> bool:
    """The fast check of the hot path: plain ASCII text within its column, counts in range
    (no function call per field; anything else goes to :func:`_repaired`, which decides)."""
    a = entry.attribution
    for value in (
        a.org,
        a.division,
        a.tribe,
        a.squad,
        a.developer,
        a.agent,
        a.run_id,
        a.step,
        entry.requested_model,
        entry.served_model,
        entry.provider,
        entry.error_type,
    ):
        if value is not None and (
            len(value) > 200 or "\x00" in value or not (value.isascii() or _encodable(value))
        ):
            return False
    for value in (a.key_id, entry.tier, entry.id):
        if value is not None and (
            len(value) > 40 or "\x00" in value or not (value.isascii() or _encodable(value))
        ):
            return False
    for step in entry.fallback_path:
        if len(step) > 200 or "\x00" in step or ">" in step or not step.isascii():
            return False
    u = entry.usage
    cost = entry.cost_usd
    return (
        len(entry.fallback_path) <= _MAX_PATH_STEPS
        and 0 <= u.input_tokens <= BIGINT
        and 0 <= u.output_tokens <= BIGINT
        and 0 <= u.cache_read_tokens <= BIGINT
        and 0 <= u.cache_write_tokens <= BIGINT
        and type(entry.retries) is int
        and 0 <= entry.retries < 2**31
        and (cost is None or (cost.is_finite() and 0 <= cost <= _MAX_COST))
        and _ms(entry.latency_ms) is entry.latency_ms
        and _ms(entry.ttft_ms) is entry.ttft_ms
    )


def _repaired(entry: LedgerEntry) -> LedgerEntry:
    changes: dict[str, Any] = {}
    a = entry.attribution
    who: dict[str, Any] = {}
    for name in _ATTRIBUTION:
        value = getattr(a, name)
        if not _fits(value, _LIMITS.get(name)):
            who[name] = clean_text(value, _LIMITS.get(name))
    if who:
        changes["attribution"] = replace(a, **who)
    for name in _TEXT:
        value = getattr(entry, name)
        if not _fits(value, _LIMITS.get(name)):
            changes[name] = clean_text(value, _LIMITS.get(name))
    if not _fits(entry.id, _LIMITS["id"]):
        # An id is matched, not read: a stable digest keeps reconciliation exactly-once.
        changes["id"] = hashlib.sha256(entry.id.encode("utf-8", "backslashreplace")).hexdigest()[
            :32
        ]
    path = entry.fallback_path
    if len(path) > _MAX_PATH_STEPS or not all(_fits(p, 200) and ">" not in p for p in path):
        changes["fallback_path"] = tuple(
            clean_text(p, 200).replace(">", "›") for p in path[:_MAX_PATH_STEPS]
        )
    u = entry.usage
    counts = (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens)
    if not all(type(n) is int and 0 <= n <= BIGINT for n in counts):
        changes["usage"] = Usage(*(_count(int(n)) for n in counts))
    if type(entry.retries) is not int or not 0 <= entry.retries < 2**31:
        changes["retries"] = max(0, min(int(entry.retries), 2**31 - 1))
    cost = entry.cost_usd
    if cost is not None and not (cost.is_finite() and 0 <= cost <= _MAX_COST):
        changes["cost_usd"] = (
            min(max(cost, Decimal(0)), _MAX_COST) if cost.is_finite() else _MAX_COST
        )
    if _ms(entry.latency_ms) is not entry.latency_ms:
        changes["latency_ms"] = None
    if _ms(entry.ttft_ms) is not entry.ttft_ms:
        changes["ttft_ms"] = None
    if not changes:
        return entry
    return replace(entry, **changes)
