"""Sessions' work kept on disk under a token, so that a reload, a dropped connection or a server restart loses
nothing: an embedded SQLite database by default, at a path the operator chooses.

What is kept is plain JSON (never a pickle: the file may be shared or replaced by someone else), bounded per
session (``max_bytes``) and in number (``max_sessions``, the least recently used dropped first); a session not
touched for ``ttl_s`` expires. A token is 128 random bits: without it, nobody reads a session's work.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import VitcoreError

TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16): 16 random bytes, 22 characters
MAX_BYTES = 4 << 20  # one session's saved work
MAX_SESSIONS = 2000
TTL_S = 14 * 24 * 3600.0  # two weeks without a visit


class TokenError(VitcoreError):
    """A session token that is malformed, unknown or expired; the message names which."""


class StoreUnavailable(VitcoreError):
    """The database cannot be opened, read or written (a corrupt or unwritable file); the app runs without it."""


def new_token() -> str:
    """A fresh, unguessable session token."""
    return secrets.token_urlsafe(16)


class SessionStore:
    """Saved work by session token in the SQLite file at ``path`` (created when absent)."""

    def __init__(
        self, path: str | Path, max_bytes: int = MAX_BYTES, max_sessions: int = MAX_SESSIONS, ttl_s: float = TTL_S
    ):
        self.path, self.max_bytes, self.max_sessions, self.ttl_s = Path(path), max_bytes, max_sessions, ttl_s
        self._lock = threading.Lock()  # one connection, shared by every session's thread
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sessions "
                "(token TEXT PRIMARY KEY, touched REAL NOT NULL, work TEXT NOT NULL)"
            )
            self._db.commit()
            (check,) = self._db.execute("PRAGMA quick_check").fetchone()
        except (sqlite3.Error, OSError) as e:
            raise StoreUnavailable(f"{self.path}: cannot keep sessions' work there ({e})") from None
        if check != "ok":
            raise StoreUnavailable(f"{self.path}: the sessions database is damaged ({check})")

    def load(self, token: str) -> dict[str, Any]:
        """The work saved under ``token``; :class:`TokenError` when the token is malformed, unknown or expired."""
        if not TOKEN.fullmatch(token or ""):
            raise TokenError("the session link's token is malformed: a fresh session was started")
        rows = self._query("SELECT touched, length(work) FROM sessions WHERE token = ?", (token,))
        if not rows:
            raise TokenError("the session link is unknown (or was dropped): a fresh session was started")
        touched, size = rows[0]
        if time.time() - touched > self.ttl_s:
            self.delete(token)
            raise TokenError("the session link has expired: a fresh session was started")
        if size > self.max_bytes:  # not written by save(): read no further
            raise TokenError("the session's saved work is larger than a session may keep: a fresh session was started")
        (work,) = self._query("SELECT work FROM sessions WHERE token = ?", (token,))[0]
        try:
            value = json.loads(work)
        except (json.JSONDecodeError, RecursionError):
            raise TokenError("the session's saved work cannot be read: a fresh session was started") from None
        if not isinstance(value, dict):
            raise TokenError("the session's saved work cannot be read: a fresh session was started")
        self._write(("UPDATE sessions SET touched = ? WHERE token = ?", (time.time(), token)))
        return value

    def save(self, token: str, work: dict[str, Any]) -> int:
        """Keep ``work`` (JSON-able) under ``token``; returns its size in bytes. Work over ``max_bytes`` is refused
        with :class:`StoreUnavailable`; the least recently used sessions beyond ``max_sessions`` and expired ones are
        dropped."""
        if not TOKEN.fullmatch(token or ""):
            raise TokenError("the session token is malformed")
        text = json.dumps(work, separators=(",", ":"))
        if len(text) > self.max_bytes:
            raise StoreUnavailable(
                f"this session's work ({len(text):,} bytes) is over the {self.max_bytes:,} bytes kept per session"
            )
        now = time.time()
        self._write(
            (
                "INSERT INTO sessions (token, touched, work) VALUES (?, ?, ?) "
                "ON CONFLICT(token) DO UPDATE SET touched = excluded.touched, work = excluded.work",
                (token, now, text),
            ),
            ("DELETE FROM sessions WHERE touched < ?", (now - self.ttl_s,)),
            (
                "DELETE FROM sessions WHERE token NOT IN (SELECT token FROM sessions ORDER BY touched DESC LIMIT ?)",
                (self.max_sessions,),
            ),
        )
        return len(text)

    def delete(self, token: str) -> None:
        self._write(("DELETE FROM sessions WHERE token = ?", (token,)))

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM sessions")[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StoreUnavailable(f"{self.path}: sessions' work cannot be read there ({e})") from None

    def _write(self, *statements: tuple[str, tuple]) -> None:
        """Run ``statements`` in one transaction."""
        try:
            with self._lock, self._db:
                for sql, params in statements:
                    self._db.execute(sql, params)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"{self.path}: sessions' work cannot be kept there ({e})") from None
