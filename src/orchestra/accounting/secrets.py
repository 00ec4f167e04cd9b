"""Upstream credentials encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from ``$ORCHESTRA_SECRET_KEY`` (a Fernet key) or from
``<home>/secret.key``, created on first use with mode 0600. Encrypted credentials live in
``<home>/secrets.json`` as ``{name: token}``; a provider refers to one by name
(``api_key_secret:`` in ``orchestra.yaml``). Values never appear in ``repr``, logs or errors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from orchestra.accounting.errors import SecretError
from orchestra.config.paths import orchestra_home

SECRET_KEY_ENV = "ORCHESTRA_SECRET_KEY"  # noqa: S105 (a variable name)
KEY_FILE = "secret.key"
SECRETS_FILE = "secrets.json"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class SecretBox:
    """Encrypt and decrypt strings with one Fernet key."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise SecretError(
                "the secret key is not a valid Fernet key",
                hint=f"unset {SECRET_KEY_ENV} or set it to the output of Fernet.generate_key()",
            ) from exc

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    @classmethod
    def from_home(cls, home: Path | None = None) -> SecretBox:
        """The key from ``$ORCHESTRA_SECRET_KEY``, else ``<home>/secret.key`` (created 0600)."""
        env = os.environ.get(SECRET_KEY_ENV)
        if env:
            return cls(env.encode())
        path = (home or orchestra_home()) / KEY_FILE
        if not path.exists():
            _write_private(path, Fernet.generate_key())
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise SecretError(
                f"{path} is readable by other users (mode {mode:o})",
                hint=f"chmod 600 {path}",
            )
        return cls(path.read_bytes().strip())

    def encrypt(self, plaintext: str) -> str:
        """``plaintext`` encrypted with this key (a Fernet token)."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The plaintext of a token made by :meth:`encrypt` with this key."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretError(
                "a stored secret cannot be decrypted with this key",
                hint="use the key it was encrypted with, or store the credential again",
            ) from exc


class SecretStore:
    """Named, encrypted credentials in ``<home>/secrets.json`` (mode 0600)."""

    def __init__(self, box: SecretBox, path: Path | None = None) -> None:
        self._box = box
        self.path = path or orchestra_home() / SECRETS_FILE

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise SecretError(
                f"{self.path} is not valid JSON", hint="restore it from a backup"
            ) from exc
        if not isinstance(data, dict):
            raise SecretError(f"{self.path} is not a mapping", hint="restore it from a backup")
        return {str(k): str(v) for k, v in data.items()}

    def set(self, name: str, value: str) -> None:
        """Encrypt and store ``value`` under ``name``."""
        data = self._read()
        data[name] = self._box.encrypt(value)
        _write_private(self.path, json.dumps(data, indent=2, sort_keys=True).encode())

    def get(self, name: str) -> str:
        """The decrypted credential ``name``."""
        data = self._read()
        if name not in data:
            raise SecretError(
                f"no stored secret named {name!r}", hint="store it first (SecretStore.set)"
            )
        return self._box.decrypt(data[name])

    def delete(self, name: str) -> bool:
        """Forget the credential ``name``; ``False`` when there was none."""
        data = self._read()
        if data.pop(name, None) is None:
            return False
        _write_private(self.path, json.dumps(data, indent=2, sort_keys=True).encode())
        return True

    def names(self) -> list[str]:
        """The names of the stored credentials, sorted."""
        return sorted(self._read())

    def as_mapping(self) -> Mapping[str, str]:
        """A read-only mapping name -> credential that decrypts on access (for the gateway)."""
        return _DecryptingMapping(self)


class _DecryptingMapping(Mapping[str, str]):
    def __init__(self, store: SecretStore) -> None:
        self._store = store

    def __getitem__(self, name: str) -> str:
        try:
            return self._store.get(name)
        except SecretError as exc:
            if name not in self._store.names():
                raise KeyError(name) from exc
            raise

    def __iter__(self) -> Iterator[str]:
        return iter(self._store.names())

    def __len__(self) -> int:
        return len(self._store.names())

    def __repr__(self) -> str:
        return f"<secrets {self._store.names()!r} (values hidden)>"
