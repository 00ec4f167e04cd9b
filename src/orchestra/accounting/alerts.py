"""Soft-threshold budget alerts: a log record and an optional webhook POST.

Delivery runs on a background thread, so the request that crossed the threshold never
waits for the webhook; a failing webhook is logged (without its URL's query string, which
may carry a token) and dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import httpx

log = logging.getLogger("orchestra.accounting.alerts")


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A budget crossed its soft threshold in a period (sent once per budget and period)."""

    budget: str
    scope: str
    subject: str
    period_start: str
    threshold_pct: int
    cap_usd: str
    spent_usd: str
    reserved_usd: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        """The webhook payload: the alert's fields, ``at`` in ISO 8601, and its ``kind``."""
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["kind"] = "orchestra.budget.soft_threshold"
        return data


class BudgetAlerts:
    """Where alerts go: always the ``orchestra.accounting.alerts`` logger, optionally a webhook."""

    def __init__(
        self,
        webhook_url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self._url = webhook_url
        self._transport = transport
        self._timeout = timeout_s
        self._queue: queue.SimpleQueue[BudgetAlert | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent: list[BudgetAlert] = []
        """Alerts emitted by this process (for status pages and tests)."""

    def emit(self, alert: BudgetAlert) -> None:
        """Log ``alert`` and queue its webhook delivery; returns at once."""
        self.sent.append(alert)
        log.warning(
            "budget %s reached %d%% of its $%s cap (spent $%s, reserved $%s) in period %s",
            alert.budget,
            alert.threshold_pct,
            alert.cap_usd,
            alert.spent_usd,
            alert.reserved_usd,
            alert.period_start,
        )
        if self._url is None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._deliver, name="budget-alerts", daemon=True
                )
                self._thread.start()
        self._queue.put(alert)

    def _deliver(self) -> None:
        assert self._url is not None
        with httpx.Client(transport=self._transport, timeout=self._timeout) as client:
            while (alert := self._queue.get()) is not None:
                try:
                    client.post(self._url, json=alert.to_json()).raise_for_status()
                except httpx.HTTPError as exc:
                    safe = httpx.URL(self._url).copy_with(query=None, userinfo=b"")
                    log.error("budget alert webhook %s failed: %s", safe, type(exc).__name__)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout_s``) and stop the delivery thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=timeout_s)
