"""Early warnings: thresholds with a real trend, de-duplication, acknowledge and resolve,
history, and escalation to a local webhook receiver and a local SMTP server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from aiosmtpd.controller import Controller

from orchestra.analytics import (
    INDICATORS,
    Escalator,
    InsightSettings,
    acknowledge,
    alert_history,
    check_warnings,
    list_alerts,
    resolve,
)
from orchestra.analytics.early_warnings import evaluate
from orchestra.config import EscalationPath, SMTPSettings
from orchestra.org import load_org
from orchestra.store import Database
from tests.analytics.fixtures import T0, ledger

INDICATOR = {i.name: i for i in INDICATORS}
NOW = T0 + timedelta(days=14)


def _points(values: list[float]) -> list[tuple[str, float]]:
    return [(f"d{i}", v) for i, v in enumerate(values)]


def test_a_rising_error_rate_warns_and_past_the_slo_is_critical() -> None:
    rising = _points([0.01, 0.012, 0.015, 0.02, 0.022, 0.03, 0.035, 0.04])
    found = evaluate("acme", INDICATOR["gateway_error_rate"], rising, threshold=0.05, alpha=0.05)
    assert found is not None and found.severity == "warning"
    assert found.detail["mann_kendall"]["p_value"] < 0.05
    past = _points([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08])
    found = evaluate("acme", INDICATOR["gateway_error_rate"], past, threshold=0.05, alpha=0.05)
    assert found is not None and found.severity == "critical"


def test_one_bad_day_past_the_threshold_raises_nothing() -> None:
    spike = _points([0.01, 0.02, 0.01, 0.015, 0.01, 0.02, 0.01, 0.30])
    assert (
        evaluate("acme", INDICATOR["gateway_error_rate"], spike, threshold=0.05, alpha=0.05) is None
    )


def test_falling_coverage_warns_and_a_cost_spike_is_an_anomaly() -> None:
    falling = _points([90.0, 88.0, 85.0, 84.0, 80.0, 76.0, 72.0, 65.0])
    found = evaluate("acme", INDICATOR["test_coverage"], falling, threshold=70.0, alpha=0.05)
    assert found is not None and found.severity == "critical"
    costs = _points([10.0, 11.0, 9.0, 10.5, 10.0, 9.5, 10.0, 60.0])
    found = evaluate("acme", INDICATOR["daily_cost"], costs, threshold=None, alpha=0.05)
    assert found is not None and "standard deviations" in found.summary


class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode())
        )
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receivers() -> Iterator[tuple[str, list[dict[str, Any]], _Mailbox, int]]:
    _Receiver.bodies = []
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    mailbox, port = _Mailbox(), _free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}/hook", _Receiver.bodies, mailbox, port
    finally:
        smtp.stop()
        http.shutdown()
        http.server_close()


def _rising_errors(db: Database, shift: timedelta = timedelta(0)) -> None:
    rows = []
    for day in range(10):  # errors rise from 0 to 9 in 20 calls a day
        at = T0 + shift + timedelta(days=4 + day)
        for call in range(20):
            outcome = "upstream_error" if call < day else "ok"
            rows.append(
                (f"c{day}-{call}", "alice", None, 1000, at + timedelta(minutes=call), outcome)
            )
    ledger(db, rows)


def test_check_escalates_once_then_acknowledge_resolve_and_history(
    db: Database, receivers: tuple[str, list[dict[str, Any]], _Mailbox, int]
) -> None:
    url, posted, mailbox, port = receivers
    _rising_errors(db)
    tree = load_org(db)
    assert tree is not None
    escalator = Escalator(
        paths={
            "checkout": EscalationPath(webhook=url),
            "acme": EscalationPath(email=["oncall@acme.test"]),
        },
        smtp=SMTPSettings(host="127.0.0.1", port=port, sender="orchestra@acme.test"),
        tree=tree,
    )
    settings = InsightSettings()
    alerts = check_warnings(db, unit="payments", settings=settings, now=NOW, send=escalator.send)
    assert [(a.indicator, a.severity) for a in alerts] == [("gateway_error_rate", "critical")]
    assert len(posted) == 1 and "gateway_error_rate in payments" in posted[0]["text"]
    assert mailbox.messages == []  # payments escalates to its tribe (checkout), the nearest
    org = check_warnings(db, settings=settings, now=NOW, send=escalator.send)
    assert len(org) == 1 and len(mailbox.messages) == 1
    sender, to, content = mailbox.messages[0]
    assert (sender, to) == ("orchestra@acme.test", ["oncall@acme.test"])
    assert "Subject: [critical] gateway_error_rate in acme" in content

    again = check_warnings(
        db, unit="payments", settings=settings, now=NOW + timedelta(hours=1), send=escalator.send
    )
    assert [a.id for a in again] == [alerts[0].id]  # de-duplicated
    assert len(posted) == 1  # not paged again

    acked = acknowledge(db, alerts[0].id, "lead")
    assert (acked.state, acked.acknowledged_by) == ("acknowledged", "lead")
    resolve(db, alerts[0].id, "lead")
    assert [a.state for a in list_alerts(db, state="resolved")] == ["resolved"]
    events = [e["event"] for e in alert_history(db, alerts[0].id)]
    assert events == ["opened", "escalated", "seen", "acknowledged", "resolved"]


def test_a_check_that_no_longer_finds_it_resolves_the_alert(db: Database) -> None:
    _rising_errors(db)
    opened = check_warnings(db, unit="payments", now=NOW)
    assert opened
    later = NOW + timedelta(days=30)  # the window holds no calls any more
    assert check_warnings(db, unit="payments", now=later) == []
    history = alert_history(db, opened[0].id)
    assert history[-1]["event"] == "resolved" and history[-1]["actor"] == "check"


def test_a_dead_channel_is_recorded_not_raised(db: Database) -> None:
    _rising_errors(db)
    tree = load_org(db)
    assert tree is not None
    escalator = Escalator(
        paths={"acme": EscalationPath(webhook="http://127.0.0.1:9/x", email=["a@b.test"])},
        smtp=SMTPSettings(host="127.0.0.1", port=_free_port()),
        tree=tree,
    )
    alerts = check_warnings(db, now=NOW, send=escalator.send)
    events = [e for e in alert_history(db, alerts[0].id) if e["event"] == "escalation_failed"]
    assert len(events) == 2


def test_the_docs_table_lists_every_indicator_as_the_code_defines_it() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "insight.md").read_text("utf-8")
    for i in INDICATORS:
        threshold = "none" if i.default_threshold is None else f"{i.default_threshold:g} {i.unit}"
        assert f"| `{i.name}` | {i.how} | {i.worse_when} | {threshold} |" in page, i.name
