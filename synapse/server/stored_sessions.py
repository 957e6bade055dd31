"""Logged-in web sessions in the database, so a login made by one process holds in all.

`synapse serve --workers N` runs N processes on one port, and a browser's requests land
on any of them; in scale mode without Redis, on any instance. So a login is a row of
`web_sessions` (hex SHA-256 of the cookie's id, username, expiry), never in one
process's memory alone:

* the cookie's id itself is never stored: a copy of the database is no set of cookies;
* a page view reads the row at most once a second per process (a small cache of ids
  seen, logged in or not), so a logout or `synapse user remove` on one process holds on
  every process within `CACHE_SECONDS`;
* at most `max_sessions` rows: a login deletes expired rows, then the oldest when full;
* the database unavailable (dblink.py): reads use the last copy, a login is kept in this
  process's memory (valid here only) until it is back.

With Redis configured, scale mode keeps sessions there instead (scale/sessions.py).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .auth import MAX_SESSIONS, SESSION_TTL, Session, SessionStore, valid_session_id
from .dblink import DatabaseDown, DatabaseLink

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["CACHE_SECONDS", "DatabaseSessionStore", "end_sessions", "id_hash"]

#: How long a process trusts what it read about a session id before reading it again.
CACHE_SECONDS = 1.0
#: Session ids a process remembers at most (the oldest read go first).
CACHE_MAX = 4096


def id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


class DatabaseSessionStore(SessionStore):
    """The web app's session interface (aget / alogin / adrop) over `web_sessions`.

    `clock` gives expiry times (Unix seconds), `monotonic` the cache's age; tests set both.
    """

    def __init__(
        self,
        *,
        secret: bytes | None = None,
        link: DatabaseLink | None = None,
        max_sessions: int = MAX_SESSIONS,
        ttl: float = SESSION_TTL,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(secret=secret, max_sessions=max_sessions, ttl=ttl)
        self.link = link or DatabaseLink()
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._monotonic = monotonic
        #: session id -> (when it was read, the session or None for "not logged in")
        self._cache: dict[str, tuple[float, Session | None]] = {}

    def __len__(self) -> int:
        """Logged-in sessions stored: rows not yet expired, plus any kept in memory."""
        import sqlalchemy as sa

        from ..storage.tables import web_sessions

        with self.link.engine().connect() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(web_sessions)
                                .where(web_sessions.c.expires >= self._clock())).scalar()
        return int(rows or 0) + super().__len__()

    async def aget(self, session_id: str | None) -> Session | None:
        if not session_id or not valid_session_id(session_id):
            return None
        now = self._monotonic()
        hit = self._cache.get(session_id)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return self._live(hit[1])
        key = id_hash(session_id)
        try:
            row = await self.link.run("reading a login session", lambda eng: _read(eng, key))
        except DatabaseDown:
            mine = self.get(session_id)  # made here while the database was down
            return mine if mine is not None else self._live(hit[1] if hit is not None else None)
        if row is None:
            session = self.get(session_id) if super().__len__() else None
        else:
            session = Session(id=session_id, csrf=self.csrf_for(session_id), user=row[0], expires=row[1])
        self._remember(session_id, session, now)
        return self._live(session)

    async def alogin(self, user: str) -> Session:
        session = self._new(user)
        try:
            await self.link.run("storing a login session", lambda eng: self._store(eng, session))
        except DatabaseDown:
            self._keep(session)
            return session
        self._remember(session.id, session, self._monotonic())
        return session

    async def adrop(self, session_id: str) -> None:
        self.drop(session_id)
        self._cache.pop(session_id, None)
        key = id_hash(session_id)
        try:
            await self.link.run("ending a login session", lambda eng: _delete(eng, key))
        except DatabaseDown:
            pass

    def _new(self, user: str) -> Session:
        session = super()._new(user)
        session.expires = self._clock() + self.ttl
        return session

    def _live(self, session: Session | None) -> Session | None:
        return session if session is not None and session.expires >= self._clock() else None

    def _remember(self, session_id: str, session: Session | None, now: float) -> None:
        self._cache.pop(session_id, None)
        self._cache[session_id] = (now, session)  # re-inserted: oldest read first
        while len(self._cache) > CACHE_MAX:
            del self._cache[next(iter(self._cache))]

    def _store(self, eng: "sa.Engine", session: Session) -> None:
        """Insert the session; first drop expired rows, and the oldest while the table is full."""
        import sqlalchemy as sa

        from ..storage.tables import web_sessions as t

        now = self._clock()
        with eng.begin() as conn:
            conn.execute(t.delete().where(t.c.expires < now))  # on SQLite this takes the write lock first
            count = int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)
            if count >= self.max_sessions:
                oldest = sa.select(t.c.id_hash).order_by(t.c.created_at).limit(count - self.max_sessions + 1)
                conn.execute(t.delete().where(t.c.id_hash.in_(oldest.scalar_subquery())))
            conn.execute(t.insert().values(id_hash=id_hash(session.id), username=session.user or "",
                                           created_at=now, expires=session.expires))


def _read(eng: "sa.Engine", key: str) -> tuple[str, float] | None:
    import sqlalchemy as sa

    from ..storage.tables import web_sessions as t

    with eng.connect() as conn:
        row = conn.execute(sa.select(t.c.username, t.c.expires).where(t.c.id_hash == key)).first()
    return None if row is None else (str(row[0]), float(row[1]))


def _delete(eng: "sa.Engine", key: str) -> None:
    from ..storage.tables import web_sessions as t

    with eng.begin() as conn:
        conn.execute(t.delete().where(t.c.id_hash == key))


def end_sessions(username: str, settings: Any = None) -> int:
    """Delete every stored session of `username` (`synapse user remove`); how many there were.

    Every process stops accepting them within CACHE_SECONDS.
    """
    from .. import storage
    from ..storage.tables import web_sessions as t

    eng = storage.engine(settings=settings) if settings is not None else DatabaseLink().engine()
    with eng.begin() as conn:
        return int(conn.execute(t.delete().where(t.c.username == username)).rowcount or 0)
