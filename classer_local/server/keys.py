"""API keys in SQLite under ``CLASSER_HOME`` (``keys.sqlite3``): hashed, with quotas and limits.

A key reads ``clk_<id>_<secret>``. Only ``id``, a per-key random salt and
HMAC-SHA256(salt, secret) are stored, so the database never holds a usable key;
the full key is shown once, when it is created. The database and its WAL files are made
readable by their owner only (0600). ``quota`` is a token budget
(``None``: unlimited) that ``used`` counts up to; ``rpm``/``tpm`` are per-key rate
limits (``None``: the server's defaults; 0: unlimited).

Example:
    >>> store = KeyStore(":memory:")
    >>> key, row = store.create("ci", quota=1000)
    >>> store.verify(key)["name"]
    'ci'
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .. import config
from ..errors import AuthenticationError, InvalidRequestError, NotFoundError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    quota INTEGER,
    used INTEGER NOT NULL DEFAULT 0,
    rpm INTEGER,
    tpm INTEGER,
    admin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    revoked REAL
);
"""
_PUBLIC = ("id", "name", "quota", "used", "rpm", "tpm", "admin", "created", "revoked")
_KEY_RE = re.compile(r"^clk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
MAX_NAME_CHARS = 100
MAX_LIMIT = 2**62  # SQLite INTEGER is 64-bit signed; leave room for used + charge


def default_path() -> Path:
    return config.home() / "keys.sqlite3"


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


def _public(row: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    d = {k: row[k] for k in _PUBLIC}
    d["admin"] = bool(d["admin"])
    d["prefix"] = f"clk_{d['id']}_"
    d["remaining"] = None if d["quota"] is None else max(0, d["quota"] - d["used"])
    return d


def _limit(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT:
        raise InvalidRequestError(
            f"{name}_invalid",
            f"{name} must be an integer in [0, 2**62] or null.",
            {name: value if isinstance(value, int) and abs(value) < 2**63 else str(value)},
        )
    return value


def _private(path: str, create: bool = True) -> None:
    """Make ``path`` readable and writable by its owner only (created empty when missing)."""
    if create:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    try:
        os.chmod(path, 0o600)
    except FileNotFoundError:
        pass


class KeyStore:
    """The key table. Thread-safe; every process sees the others' writes (SQLite WAL)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path or default_path())
        self._lock = threading.Lock()
        if self.path != ":memory:":
            _private(self.path)
        self._con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._con.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.executescript(_SCHEMA)
        if self.path != ":memory:":
            for suffix in ("", "-wal", "-shm"):  # SQLite copies the mode, but an older file may not
                _private(self.path + suffix, create=False)

    def close(self) -> None:
        self._con.close()

    def create(
        self,
        name: str,
        *,
        quota: int | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        admin: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """A new key: returns (the full key, shown only now; its public row)."""
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
            raise InvalidRequestError(
                "key_name_invalid", f"name must be 1 to {MAX_NAME_CHARS} characters.", {"max": MAX_NAME_CHARS}
            )
        quota, rpm, tpm = _limit("quota", quota), _limit("rpm", rpm), _limit("tpm", tpm)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        with self._lock:
            self._con.execute(
                "INSERT INTO keys (id, name, salt, hash, quota, used, rpm, tpm, admin, created) "
                "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                (key_id, name.strip(), salt, _digest(salt, secret), quota, rpm, tpm, int(admin), time.time()),
            )
        return f"clk_{key_id}_{secret}", self.get(key_id)

    def _row(self, key_id: str) -> sqlite3.Row | None:
        with self._lock:
            return self._con.execute("SELECT * FROM keys WHERE id = ?", (key_id,)).fetchone()

    def get(self, key_id: str) -> dict[str, Any]:
        row = self._row(key_id)
        if row is None:
            raise NotFoundError("key_not_found", f"No API key with id {key_id!r}.", {"id": key_id})
        return _public(row)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._con.execute("SELECT * FROM keys ORDER BY created").fetchall()
        return [_public(r) for r in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._con.execute("SELECT COUNT(*) FROM keys WHERE revoked IS NULL").fetchone()[0])

    def verify(self, key: str) -> dict[str, Any]:
        """The public row of a valid, unrevoked ``key``; ``AuthenticationError`` otherwise."""
        m = _KEY_RE.match(key or "")
        row = self._row(m.group(1)) if m else None
        # Compare against a dummy digest on a miss too, so timing does not reveal which ids exist.
        salt = row["salt"] if row is not None else b"\0" * 16
        expected = row["hash"] if row is not None else b"\0" * 32
        ok = hmac.compare_digest(_digest(salt, m.group(2) if m else "x"), expected)
        if row is None or not ok or row["revoked"] is not None:
            raise AuthenticationError("invalid_api_key", "The API key is invalid or has been revoked.")
        return _public(row)

    def charge(self, key_id: str, tokens: int) -> None:
        """Add ``tokens`` to the key's ``used`` count."""
        if tokens <= 0:
            return
        with self._lock:
            self._con.execute("UPDATE keys SET used = used + ? WHERE id = ?", (int(tokens), key_id))

    def update(self, key_id: str, **changes: Any) -> dict[str, Any]:
        """Set ``quota``/``rpm``/``tpm`` (None clears), ``used`` (e.g. 0 to top up) or revoke."""
        self.get(key_id)
        cols: dict[str, Any] = {}
        for name in ("quota", "rpm", "tpm", "used"):
            if name in changes:
                cols[name] = _limit(name, changes[name])
        if "used" in cols and cols["used"] is None:
            raise InvalidRequestError("used_invalid", "used must be an integer.")
        if changes.get("revoked"):
            cols["revoked"] = time.time()
        if cols:
            sets = ", ".join(f"{c} = ?" for c in cols)
            with self._lock:
                self._con.execute(f"UPDATE keys SET {sets} WHERE id = ?", (*cols.values(), key_id))
        return self.get(key_id)
