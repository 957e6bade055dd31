"""Login throttling counted in the database: the windows of `throttle.py`, shared by every
process serving the pages, so `--workers N` does not multiply a guesser's attempts by N.

An attempt is one row of `login_attempts` (keyed hashes of the client, the username and
both, and the time). Reserving it is one transaction that every process takes in turn
(SQLite: its first statement is a write, which takes the database's write lock;
PostgreSQL: a transaction-scoped advisory lock): delete rows older than the longest
window, count each window, refuse with the time to wait when one is full, else insert.
So 40 parallel wrong passwords spread over the workers still get 5 checks. A login that
succeeds deletes its row again.

The table holds only the last 5 minutes (the longest window) of allowed attempts, and at
most `MAX_ROWS` (the oldest go first). The database unavailable (dblink.py): this
process's own throttle counts until it is back.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .dblink import DatabaseDown, DatabaseLink
from .throttle import LoginThrottle, Window

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["DatabaseLoginThrottle", "MAX_ROWS"]

#: Attempt rows kept at most, whatever their age.
MAX_ROWS = 50_000
#: pg_advisory_xact_lock key that serialises login attempts between instances.
_PG_LOCK_ID = 0x73796E6C6F67696E  # "synlogin"


class DatabaseLoginThrottle(LoginThrottle):
    """`aattempt` / `asucceeded` over the `login_attempts` table; the in-process counters
    of LoginThrottle are the fallback. `secret` keys the hashes (no username is stored)."""

    def __init__(
        self,
        *,
        secret: bytes,
        link: DatabaseLink | None = None,
        pair: Window = LoginThrottle.PAIR,
        user: Window = LoginThrottle.USER,
        client: Window = LoginThrottle.CLIENT,
        max_rows: int = MAX_ROWS,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(pair, user, client)
        self.link = link or DatabaseLink()
        self._hash_key = hmac.new(secret, b"synapse login attempts", hashlib.sha256).digest()
        self.max_rows = max_rows
        self._wall = wall_clock
        #: stamp handed out -> the row it stands for (to give a successful login's slot back)
        self._rows: dict[float, int] = {}

    async def aattempt(self, client: str, username: str) -> tuple[float, float]:
        keys = self._hashed(client, username)
        try:
            row, wait = await self.link.run("counting a login attempt", lambda eng: self._reserve(eng, keys))
        except DatabaseDown:
            return self.attempt(client, username)
        if wait > 0:
            return 0.0, wait
        stamp = self._clock()
        while stamp in self._rows or stamp == 0.0:
            stamp = math.nextafter(stamp, math.inf)
        self._rows[stamp] = row
        while len(self._rows) > 4096:  # attempts that failed never come back for theirs
            del self._rows[next(iter(self._rows))]
        return stamp, 0.0

    async def asucceeded(self, client: str, username: str, stamp: float) -> None:
        row = self._rows.pop(stamp, None)
        if row is None:  # counted in memory while the database was down
            self.succeeded(client, username, stamp)
            return
        try:
            await self.link.run("giving a login attempt back", lambda eng: _give_back(eng, row))
        except DatabaseDown:
            pass

    def _hashed(self, client: str, username: str) -> tuple[str, str, str]:
        (_, pair), (_, user), (_, who) = self._keys(client, username)

        def h(kind: str, value: str) -> str:
            return hmac.new(self._hash_key, f"{kind}\0{value}".encode("utf-8", "replace"), hashlib.sha256).hexdigest()

        return h("pair", pair), h("user", user), h("client", who)

    def _reserve(self, eng: "sa.Engine", keys: tuple[str, str, str]) -> tuple[int, float]:
        """(row id, 0) for an allowed attempt, or (0, seconds to wait): one transaction."""
        import sqlalchemy as sa

        from ..storage.tables import login_attempts as t

        columns = (t.c.pair_key, t.c.user_key, t.c.client_key)
        windows = (self._pair.window, self._user.window, self._client.window)
        with eng.begin() as conn:
            if eng.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
            longest = max(w.seconds for w in windows)
            # SQLite: the write lock, before any read (PostgreSQL holds the advisory lock already)
            conn.execute(t.delete().where(t.c.ts <= self._wall() - longest))
            now = self._wall()  # read under the lock, so stamps are in commit order
            wait = 0.0
            for column, key, window in zip(columns, keys, windows):
                count, oldest = conn.execute(
                    sa.select(sa.func.count(), sa.func.min(t.c.ts)).where(column == key, t.c.ts > now - window.seconds)
                ).one()
                if count >= window.limit:
                    wait = max(wait, float(oldest) + window.seconds - now)
            if wait > 0:
                return 0, wait
            row = int(conn.execute(t.insert().values(pair_key=keys[0], user_key=keys[1], client_key=keys[2], ts=now)
                                   .returning(t.c.id)).scalar_one())
            total = int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)
            if total > self.max_rows:
                oldest_rows = sa.select(t.c.id).order_by(t.c.ts).limit(total - self.max_rows)
                conn.execute(t.delete().where(t.c.id.in_(oldest_rows.scalar_subquery())))
            return row, 0.0

    def size(self) -> int:
        """Attempt rows stored (plus any counted in memory)."""
        import sqlalchemy as sa

        from ..storage.tables import login_attempts as t

        with self.link.engine().connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0) + super().size()


def _give_back(eng: "sa.Engine", row: int) -> None:
    from ..storage.tables import login_attempts as t

    with eng.begin() as conn:
        conn.execute(t.delete().where(t.c.id == row))
