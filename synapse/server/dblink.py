"""The database as the web app's shared store for logins and login attempts.

Every process that serves the pages (the workers of `synapse serve --workers N`, and in
scale mode without Redis every instance) reads and writes the same database, so they
agree on who is logged in and how many passwords were tried. A job is a small
synchronous function of the engine, run in a worker thread (SQLite may wait up to its
busy timeout for a lock; PostgreSQL is a round trip away), never on the event loop.

The database unavailable (locked past the busy timeout, a server restarting) must not
take the pages down: `DatabaseLink.run` raises `DatabaseDown` for the caller's fallback
(the process's own memory), logs the first failure once, then leaves the database alone
for `BACKOFF` seconds so no request pays a connect timeout while it is down, and logs
its return.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..errors import SettingsError
from ..outage import Outage

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["BACKOFF", "DatabaseDown", "DatabaseLink"]

log = logging.getLogger("synapse.server")

#: Seconds the database is left alone after a failure before the next try.
BACKOFF = 2.0

T = TypeVar("T")


class DatabaseDown(Exception):
    """The database could not be used just now: the caller falls back."""


class DatabaseLink:
    """The database of the web app's settings (or `url`), and its health."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self.outage = Outage(BACKOFF)

    def engine(self) -> "sa.Engine":
        """The engine of `url`, else of the settings' database (read at most once a second)."""
        from .. import settings as settings_mod
        from .. import storage

        if self.url:
            return storage.engine(self.url)
        try:
            current = settings_mod.load(max_age=1.0)
        except SettingsError:  # a malformed settings.json (the pages say so): the data folder's database
            current = None
        return storage.engine(settings=current)

    async def run(self, what: str, job: Callable[["sa.Engine"], T]) -> T:
        """`job(engine)` in a thread, or DatabaseDown (logged once) when the database cannot answer."""
        if not self.outage.available():
            raise DatabaseDown("backing off")
        try:
            result = await asyncio.to_thread(lambda: job(self.engine()))
        except Exception as exc:
            if not _is_database_error(exc):
                raise
            raise self._failed(exc, what) from None
        down = self.outage.succeeded()
        if down is not None:
            log.warning("the database is back after %.1f s: logins are shared again", down)
        return result

    def _failed(self, exc: BaseException, what: str) -> DatabaseDown:
        if self.outage.failed():
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            log.warning("the database is unavailable (%s: %s) while %s; logins and login attempts are kept in this "
                        "process's memory until it is back", type(exc).__name__, text, what)
        return DatabaseDown(str(exc))


def _is_database_error(exc: BaseException) -> bool:
    import sqlalchemy.exc

    return isinstance(exc, (sqlalchemy.exc.SQLAlchemyError, OSError, SettingsError))
