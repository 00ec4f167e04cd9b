"""Web login sessions: a signed cookie naming the principal, ended by expiry or logout.

The cookie holds the principal (roles and units as mapped at login), the session id and
its end: the earlier of the ID token's expiry and ``identity.session_ttl_s``. It is signed
with HMAC-SHA256 under a secret from ``$ORCHESTRA_SESSION_SECRET`` or ``<home>/session-key``
(created 0600), so every worker sharing the state folder accepts it. Logout revokes the
session id: in this process, and — with :attr:`SessionSigner.revocations` (the
server's database, :class:`~orchestra.identity.revocations.SessionRevocations`) — for every
worker sharing that database (docs/sso.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from orchestra.config.paths import orchestra_home
from orchestra.identity.errors import TokenRefused
from orchestra.identity.principal import Identity, Principal

SESSION_SECRET_ENV = "ORCHESTRA_SESSION_SECRET"  # noqa: S105 (a variable name)
SESSION_KEY_FILE = "session-key"
COOKIE = "orchestra_session"


def load_session_secret(home: Path | None = None) -> bytes:
    """``$ORCHESTRA_SESSION_SECRET``, else ``<home>/session-key`` (created on first use)."""
    env = os.environ.get(SESSION_SECRET_ENV)
    if env:
        return env.encode()
    path = (home or orchestra_home()) / SESSION_KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    value = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Revocations(Protocol):
    """Where ended sessions are kept for every worker (the database)."""

    def revoke(self, session_id: str, until: float, now: float) -> None:
        """Record that ``session_id`` ended (it would have expired at ``until``)."""
        ...

    def is_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` was ended."""
        ...


class SessionSigner:
    """Issues and checks session cookies."""

    def __init__(
        self,
        secret: bytes,
        *,
        ttl_s: int,
        clock: Callable[[], float] = time.time,
        revocations: Revocations | None = None,
    ) -> None:
        self._secret = secret
        self._ttl = ttl_s
        self._clock = clock
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()
        self.revocations = revocations
        """Ended sessions shared with the other workers (``None``: this process only)."""

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode("ascii"), hashlib.sha256).digest())

    def issue(self, identity: Identity, *, token_expiry: float | None) -> tuple[str, float]:
        """A cookie value for ``identity`` and when it ends."""
        now = self._clock()
        end = now + self._ttl
        if token_expiry is not None:
            end = min(end, token_expiry)
        p = identity.principal
        payload = {
            "sid": secrets.token_urlsafe(16),
            "kind": p.kind,
            "id": p.id,
            "roles": sorted(p.roles),
            "unit": p.unit,
            "lead_of": list(p.lead_of),
            "exp": end,
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}", end

    def check(self, value: str) -> Identity:
        """The identity a cookie carries; :class:`TokenRefused` if forged, expired or revoked."""
        body, _, signature = value.partition(".")
        if not hmac.compare_digest(self._sign(body), signature):
            raise TokenRefused(
                "the session cookie's signature does not verify",
                hint="log in again at /api/v1/auth/login",
                reason="signature",
            )
        try:
            data = json.loads(_unb64(body))
        except (ValueError, binascii.Error) as exc:
            raise TokenRefused("the session cookie is malformed", reason="malformed") from exc
        sid = str(data["sid"])
        if float(data["exp"]) <= self._clock():
            raise TokenRefused(
                "the login session expired",
                hint="log in again at /api/v1/auth/login",
                reason="expired",
            )
        with self._lock:
            revoked = sid in self._revoked
        if revoked or (self.revocations is not None and self.revocations.is_revoked(sid)):
            raise TokenRefused(
                "the login session was ended (logout)",
                hint="log in again at /api/v1/auth/login",
                reason="revoked",
            )
        principal = Principal(
            str(data["kind"]),
            str(data["id"]),
            frozenset(data["roles"]),
            data["unit"],
            tuple(data["lead_of"]),
        )
        return Identity(principal, via="session", credential_id=sid)

    def seal(self, data: dict[str, str]) -> str:
        """``data`` signed (the login's state, PKCE verifier and nonce between redirects)."""
        body = _b64(json.dumps(data, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def unseal(self, value: str) -> dict[str, str]:
        """What :meth:`seal` signed; :class:`TokenRefused` if it was altered."""
        body, _, signature = value.partition(".")
        if not hmac.compare_digest(self._sign(body), signature):
            raise TokenRefused(
                "the login state cookie does not verify",
                hint="start the login again at /api/v1/auth/login",
                reason="state",
            )
        data = json.loads(_unb64(body))
        return {str(k): str(v) for k, v in data.items()}

    def revoke(self, identity: Identity) -> None:
        """End a session (logout): its cookie is refused from now on, in this process and
        (with :attr:`revocations`) in every worker sharing the database."""
        if identity.credential_id is None or identity.via != "session":
            return
        now = self._clock()
        until = now + self._ttl
        with self._lock:
            self._revoked = {s: e for s, e in self._revoked.items() if e > now}
            self._revoked[identity.credential_id] = until
        if self.revocations is not None:
            self.revocations.revoke(identity.credential_id, until, now)
