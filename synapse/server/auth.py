"""Logins, sessions and CSRF for the web app.

* Users live in `<data folder>/users.json` (mode 0600): a username and a scrypt hash
  of a password of at least 8 characters. `synapse user set NAME` writes it.
* A browser holds a random id in an HttpOnly, SameSite=Strict cookie (Secure over
  https). The server stores a session only at login (user, expiry), bounded, so
  cookieless requests cost nothing. The web app keeps them in the database
  (stored_sessions.py), so every worker and a restart keep them; `SessionStore` here is
  the in-memory form (the fallback while the database is unavailable).
* Every state-changing request (POST/PUT/PATCH/DELETE) must carry the CSRF token in
  `X-CSRF-Token`: an HMAC of the cookie's id under the data folder's key (csrf_key.py),
  the same in every worker. Its Origin (when the browser sends one) must be this server.
  That holds on loopback too: any page open in the user's browser can send a request to
  127.0.0.1:8000.
* On loopback the Host header must be a loopback name, which stops DNS rebinding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "MIN_PASSWORD",
    "Session",
    "SessionStore",
    "UserStore",
    "is_loopback",
    "user_store",
    "users_path",
]

MIN_PASSWORD = 8
SESSION_COOKIE = "synapse_session"
CSRF_HEADER = "x-csrf-token"
SESSION_TTL = 14 * 24 * 3600
#: Logged-in sessions kept at most (each needs a password; the oldest go first).
MAX_SESSIONS = 10_000
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_USERNAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")
# scrypt cost: n=2**14, r=8, p=1 (16 MiB, ~50 ms): OWASP's minimum for interactive logins.
_N, _R, _P = 2**14, 8, 1


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def users_path() -> Path:
    from ..settings import data_dir

    return data_dir() / "users.json"


def hash_password(password: str, *, salt: bytes | None = None, n: int = _N, r: int = _R, p: int = _P) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${n}${r}${p}${b64(salt)}${b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            maxmem=64 * 1024 * 1024, dklen=len(want),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def validate_username(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValueError("the username is empty")
    if len(name) > 64 or not set(name) <= _USERNAME_OK:
        raise ValueError("a username is 1-64 letters, digits and . _ - @")
    return name


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password must be at least {MIN_PASSWORD} characters")


def user_store() -> "UserStore":
    """Where logins live: users.json, or in scale mode the shared database's `users` table."""
    from .. import settings as settings_mod
    from ..errors import SettingsError
    from ..scale.settings_store import scale_url

    try:
        values = settings_mod.file_settings().file_values
    except SettingsError:  # a malformed settings.json: the pages say so; logins stay where they were
        values = {}
    url = scale_url(values)
    if url:
        from ..scale.users import DatabaseUsers

        return DatabaseUsers(url)  # type: ignore[return-value]
    return UserStore()


class UserStore:
    """users.json: {"users": {"name": {"password": "scrypt$…", "updated": 1700000000}}}."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or users_path()
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            from ..errors import SettingsError

            raise SettingsError(f"{self.path}: cannot read the users file ({exc}); fix or remove it") from None
        users = data.get("users") if isinstance(data, dict) else None
        return users if isinstance(users, dict) else {}

    def names(self) -> list[str]:
        return sorted(self._read())

    def has_users(self) -> bool:
        return bool(self._read())

    def set(self, username: str, password: str) -> None:
        username = validate_username(username)
        validate_password(password)
        with self._lock:
            users = self._read()
            users[username] = {"password": hash_password(password), "updated": int(time.time())}
            self._write(users)

    def remove(self, username: str) -> bool:
        with self._lock:
            users = self._read()
            if users.pop(username, None) is None:
                return False
            self._write(users)
            return True

    def check(self, username: str, password: str) -> bool:
        entry = self._read().get(username)
        stored = entry.get("password") if isinstance(entry, dict) else None
        if not isinstance(stored, str):
            # Same work for an unknown user, so timing does not tell which names exist.
            check_password(password, _dummy_hash())
            return False
        return check_password(password, stored)

    def _write(self, users: dict[str, dict[str, object]]) -> None:
        from ..settings import write_private

        write_private(self.path, json.dumps({"users": users}, indent=2) + "\n")


_dummy: list[str] = []


def _dummy_hash() -> str:
    """A hash to check an unknown user's password against: made on first use, not at
    import (an scrypt costs ~0.1 s, and every `synapse serve` start imported it)."""
    if not _dummy:
        _dummy.append(hash_password("not-a-real-password", salt=b"\0" * 16))
    return _dummy[0]


@dataclass
class Session:
    """One browser: the cookie's random id, the CSRF token derived from it, and the user if logged in."""

    id: str
    csrf: str
    user: str | None = None
    expires: float = field(default_factory=lambda: time.time() + SESSION_TTL)


class SessionStore:
    """Logged-in sessions, in memory, bounded and expiring; anonymous visitors cost nothing.

    A visitor without a login (every visitor on loopback) holds only a random id in its
    cookie; the CSRF token is an HMAC of that id under `secret` (the web app passes the
    data folder's key; without one, a key of this process), so the server keeps no record
    of it (signed double-submit). Only `login()` stores a session: at most
    `max_sessions`, each for `ttl` seconds; the oldest go first when full. The database
    (stored_sessions.py) and Redis (scale/sessions.py) stores build on this one.
    """

    def __init__(self, *, secret: bytes | None = None, max_sessions: int = MAX_SESSIONS, ttl: float = SESSION_TTL) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.max_sessions = max_sessions
        self.ttl = ttl

    def __len__(self) -> int:
        return len(self._sessions)

    def csrf_for(self, session_id: str) -> str:
        mac = hmac.new(self._secret, session_id.encode("ascii", "replace"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

    def get(self, session_id: str | None) -> Session | None:
        """The logged-in session with this id, or None (unknown, expired or anonymous)."""
        if not session_id:
            return None
        with self._lock:
            s = self._sessions.get(session_id)
            if s is not None and s.expires < time.time():
                del self._sessions[session_id]
                return None
            return s

    def anonymous(self, session_id: str | None = None) -> Session:
        """A visitor without a login: the cookie's id (a new one when it has none). Not stored."""
        if not session_id or not valid_session_id(session_id):
            session_id = secrets.token_urlsafe(32)
        return Session(id=session_id, csrf=self.csrf_for(session_id))

    def login(self, user: str) -> Session:
        """A new stored session for `user` (a new id: the old cookie's id is never reused)."""
        s = self._new(user)
        self._keep(s)
        return s

    def _new(self, user: str) -> Session:
        sid = secrets.token_urlsafe(32)
        return Session(id=sid, csrf=self.csrf_for(sid), user=user, expires=time.time() + self.ttl)

    def _keep(self, s: Session) -> None:
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                now = time.time()
                self._sessions = {k: v for k, v in self._sessions.items() if v.expires >= now}
                while len(self._sessions) >= self.max_sessions:  # still full: drop the oldest logins
                    del self._sessions[next(iter(self._sessions))]
            self._sessions[s.id] = s

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    # The web app's interface; scale mode's store (synapse/scale/sessions.py) keeps them in Redis.

    async def aget(self, session_id: str | None) -> Session | None:
        return self.get(session_id)

    async def alogin(self, user: str) -> Session:
        return self.login(user)

    async def adrop(self, session_id: str) -> None:
        self.drop(session_id)


def valid_session_id(value: str) -> bool:
    """What `secrets.token_urlsafe(32)` makes; anything else in the cookie is ignored."""
    return 32 <= len(value) <= 64 and set(value) <= _ID_CHARS
