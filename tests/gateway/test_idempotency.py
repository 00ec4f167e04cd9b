"""Model calls with an ``Idempotency-Key``: made once at the upstream (counted at the fake
upstream) whichever of two gateway "replicas" sharing one database is asked, while in
flight or after; refused with another body; per account; taken over when the replica
holding the key died; finished and kept when the client left; given back on an error;
expired and pruned."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestra.gateway import GatewayDeps, IdempotencyStore, MemoryAccountant
from orchestra.gateway.idempotency_store import DONE, IN_FLIGHT
from orchestra.store import Database, open_database
from orchestra.testing import FakeUpstream, Fault, Reply
from tests.conftest import POSTGRES_ENV, MigratedTemplates, scratch_postgres_database
from tests.gateway.helpers import ServerThread, _no_sleep, gateway_config, make_app
from tests.gateway.helpers import memory_accountant as new_accountant

BODY = {"model": "haiku", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


class Clock:
    """A store clock the test moves (key expiry); starts at the real time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Pair:
    """Two gateways (replicas) on one database and one fake upstream, with keys for
    ``alice`` and ``bob``."""

    upstream: FakeUpstream
    database: Database
    accountant: MemoryAccountant
    servers: list[ServerThread]
    stores: list[IdempotencyStore]
    keys: dict[str, str]
    clock: Clock

    def call(
        self,
        replica: int,
        key: str | None,
        *,
        who: str = "alice",
        body: dict[str, Any] | None = None,
        timeout: float = 120,
    ) -> httpx.Response:
        headers = {"x-api-key": self.keys[who], "content-type": "application/json"}
        if key is not None:
            headers["idempotency-key"] = key
        url = self.servers[replica].base_url + "/v1/messages"
        raw = json.dumps(body or BODY).encode()
        return httpx.post(url, content=raw, headers=headers, timeout=timeout)

    def rows(self) -> list[Any]:
        from sqlalchemy import text

        with self.database.engine.connect() as conn:
            sql = "select account, key, state, owner from gateway_idempotency_keys"
            return list(conn.execute(text(sql)))


def _wait(condition: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    """Poll ``condition`` (a guard against a hang on a loaded machine, not a timing)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.fixture
def sqlite_database(tmp_path: Path, migrated_templates: MigratedTemplates) -> Iterator[Database]:
    path = tmp_path / "orchestra.db"
    shutil.copy(migrated_templates.sqlite_file(), path)
    database = open_database(f"sqlite:///{path}", migrate_schema=False)
    yield database
    database.dispose()


@contextmanager
def _pair(upstream: FakeUpstream, database: Database, **idempotency: Any) -> Iterator[Pair]:
    accountant = new_accountant()
    keys = {who: accountant.add_key(who, "payments") for who in ("alice", "bob")}
    clock = Clock()
    config = gateway_config(upstream.base_url, idempotency=idempotency)
    stores: list[IdempotencyStore] = []
    servers: list[ServerThread] = []
    try:
        for _ in range(2):
            store = IdempotencyStore(database.engine, clock=clock)
            deps = GatewayDeps(sleep=_no_sleep, rand=lambda: 0.0, idempotency=store)
            stores.append(store)
            servers.append(ServerThread(make_app(config, accountant, deps)).start())
        yield Pair(upstream, database, accountant, servers, stores, keys, clock)
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def pair(upstream: FakeUpstream, sqlite_database: Database) -> Iterator[Pair]:
    with _pair(upstream, sqlite_database) as made:
        yield made


def _replayed(response: httpx.Response) -> bool:
    return response.headers.get("idempotent-replayed") == "true"


def test_a_repeated_key_is_answered_from_the_first_call_on_the_other_replica(
    pair: Pair,
) -> None:
    first = pair.call(0, "run-1/run-1:plan-1/0")
    again = pair.call(1, "run-1/run-1:plan-1/0")

    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert not _replayed(first) and _replayed(again)
    assert again.headers["x-orchestra-request-id"] == first.headers["x-orchestra-request-id"]
    assert len(pair.upstream.requests) == 1  # the model was called once
    assert len(pair.accountant.entries) == 1  # and charged once
    replays = [e for e in pair.accountant.audit_log if e[1] == "gateway.idempotent_replay"]
    assert [(action, target) for _, action, target, _ in replays] == [
        ("gateway.idempotent_replay", "run-1/run-1:plan-1/0")
    ]
    assert replays[0][3]["request_id"] == first.headers["x-orchestra-request-id"]
    # Without a key, the same request is a new call.
    assert pair.call(1, None).status_code == 200
    assert len(pair.upstream.requests) == 2


def test_a_repeat_while_the_call_is_in_flight_waits_for_its_answer(pair: Pair) -> None:
    pair.upstream.script(Reply(text="slow answer", delay_s=1.0))
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(pair.call(0, "k-in-flight")))
    thread.start()
    _wait(lambda: pair.upstream.in_flight == 1, "the first call never reached the upstream")
    again = pair.call(1, "k-in-flight")
    thread.join(120)

    assert again.status_code == 200 and _replayed(again)
    assert answers[0].status_code == 200 and "slow answer" in answers[0].text
    assert again.content == answers[0].content
    assert len(pair.upstream.requests) == 1


def test_the_same_key_with_another_body_is_refused(pair: Pair) -> None:
    assert pair.call(0, "k-body").status_code == 200
    other = pair.call(1, "k-body", body={**BODY, "max_tokens": 99})

    assert other.status_code == 422
    assert "another request body" in other.json()["error"]["message"]
    assert len(pair.upstream.requests) == 1


def test_another_account_never_sees_an_answer_kept_under_the_same_key(pair: Pair) -> None:
    pair.upstream.script(Reply(text="for alice"), Reply(text="for bob"))
    alice = pair.call(0, "k-shared")
    bob = pair.call(1, "k-shared", who="bob")

    assert "for alice" in alice.text
    assert "for bob" in bob.text and not _replayed(bob)
    assert len(pair.upstream.requests) == 2
    assert sorted(row.account for row in pair.rows()) == ["alice", "bob"]


def test_a_key_held_by_a_replica_that_died_is_taken_over_after_its_lease(
    upstream: FakeUpstream, sqlite_database: Database
) -> None:
    with _pair(upstream, sqlite_database, lease_s=1.0, wait_s=600) as pair:
        # A replica on another machine claimed the key, then died (its lease is not renewed).
        claim = pair.stores[0].claim(
            "alice", "k-dead", _digest(BODY), "elsewhere:1:x", lease_s=1.0, ttl_s=60
        )
        assert claim.kind == "owner"
        response = pair.call(1, "k-dead")

        assert response.status_code == 200 and not _replayed(response)
        assert len(pair.upstream.requests) == 1
        assert [(row.state, row.owner.split(":")[1]) for row in pair.rows()] == [
            (DONE, str(os.getpid()))
        ]


def test_a_key_held_by_a_dead_process_on_this_host_is_taken_over_at_once(
    upstream: FakeUpstream, sqlite_database: Database
) -> None:
    # A lease of ten minutes, and a repeat that would wait only 30 s: only knowing the
    # owner's process is gone lets the call through.
    with _pair(upstream, sqlite_database, lease_s=600, wait_s=30) as pair:
        gone = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        owner = f"{os.uname().nodename}:{gone.stdout.strip()}:x"
        pair.stores[0].claim("alice", "k-gone", _digest(BODY), owner, lease_s=600, ttl_s=60)
        response = pair.call(1, "k-gone")

        assert response.status_code == 200
        assert len(pair.upstream.requests) == 1


def test_a_repeat_waits_no_longer_than_wait_s_for_a_call_in_flight(
    upstream: FakeUpstream, sqlite_database: Database
) -> None:
    with _pair(upstream, sqlite_database, wait_s=0.2) as pair:
        pair.stores[0].claim(
            "alice", "k-busy", _digest(BODY), "elsewhere:1:x", lease_s=600, ttl_s=60
        )
        response = pair.call(1, "k-busy")

        assert response.status_code == 409
        assert response.headers["retry-after"]
        assert "still in progress" in response.json()["error"]["message"]
        assert pair.upstream.requests == []


def test_a_call_is_finished_and_kept_when_its_client_has_gone(pair: Pair) -> None:
    pair.upstream.script(Reply(text="answered after the client left", delay_s=1.5))
    with pytest.raises(httpx.ReadTimeout):
        pair.call(0, "k-left", timeout=0.5)
    _wait(lambda: [r.state for r in pair.rows()] == [DONE], "the call was not kept")
    again = pair.call(1, "k-left")

    assert again.status_code == 200 and _replayed(again)
    assert "answered after the client left" in again.text
    assert len(pair.upstream.requests) == 1
    assert len(pair.accountant.entries) == 1


def test_an_error_answer_gives_the_key_back_so_a_retry_calls_again(pair: Pair) -> None:
    pair.upstream.script(Fault(status=400, message="bad"))
    refused = pair.call(0, "k-error")
    assert refused.status_code == 400
    assert pair.rows() == []
    retried = pair.call(1, "k-error")

    assert retried.status_code == 200 and not _replayed(retried)
    assert len(pair.upstream.requests) == 2


def test_keys_expire_after_their_ttl_and_are_pruned(
    upstream: FakeUpstream, sqlite_database: Database
) -> None:
    with _pair(upstream, sqlite_database, ttl_s=3600) as pair:
        assert pair.call(0, "k-old").status_code == 200
        assert _replayed(pair.call(1, "k-old"))
        pair.clock.offset = 3601  # an hour later: the key has expired
        later = pair.call(1, "k-old")

        assert later.status_code == 200 and not _replayed(later)
        assert len(pair.upstream.requests) == 2
        pair.clock.offset = 7300
        assert pair.stores[0].prune() == 1
        assert pair.rows() == []


def test_a_streamed_call_or_a_bad_key_is_refused(pair: Pair) -> None:
    streamed = pair.call(0, "k-stream", body={**BODY, "stream": True})
    too_long = pair.call(0, "k" * 256)

    assert streamed.status_code == 400
    assert "streamed call cannot carry an Idempotency-Key" in streamed.json()["error"]["message"]
    assert too_long.status_code == 400
    assert pair.upstream.requests == []


@pytest.mark.postgres
def test_two_replicas_on_postgresql_make_a_call_once(
    upstream: FakeUpstream, migrated_templates: MigratedTemplates
) -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL backend not tested here")
    template = migrated_templates.postgres_database(url)
    with scratch_postgres_database(url, template) as scratch:
        database = open_database(scratch, migrate_schema=False)
        try:
            # A lease of ten minutes and repeats that wait a minute at most: a first call
            # that failed to claim its key would wait for its own lease and answer 409.
            with _pair(upstream, database, lease_s=600, wait_s=60) as pair:
                pair.upstream.script(Reply(text="once", delay_s=1.0))
                with ThreadPoolExecutor(6) as pool:
                    answers = list(pool.map(lambda i: pair.call(i % 2, "k-pg"), range(6)))

                assert [a.status_code for a in answers] == [200] * 6
                assert len({a.content for a in answers}) == 1
                assert sum(not _replayed(a) for a in answers) == 1
                assert len(pair.upstream.requests) == 1
                assert [r.state for r in pair.rows()] == [DONE]
        finally:
            database.dispose()


def test_the_store_claims_a_key_once(sqlite_database: Database) -> None:
    store = IdempotencyStore(sqlite_database.engine)
    first = store.claim("alice", "k", "h1", "a:1:x", lease_s=60, ttl_s=60)
    second = store.claim("alice", "k", "h1", "b:2:y", lease_s=60, ttl_s=60)
    other = store.claim("alice", "k", "h2", "b:2:y", lease_s=60, ttl_s=60)

    assert (first.kind, second.kind, other.kind) == ("owner", "busy", "mismatch")
    assert store.renew("alice", "k", "a:1:x", 60)
    assert not store.renew("alice", "k", "b:2:y", 60)  # not the owner
    with sqlite_database.engine.connect() as conn:
        from sqlalchemy import text

        state = conn.execute(text("select state from gateway_idempotency_keys")).scalar()
    assert state == IN_FLIGHT


def _digest(body: dict[str, Any]) -> str:
    """The hash the gateway takes of the body :meth:`Pair.call` sends for ``body``."""
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()
