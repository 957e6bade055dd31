"""The Redis connection of scale mode, and what happens when Redis is down.

`redis_url` (SYNAPSE_REDIS_URL wins; `redis://` or `rediss://`) names it. Async callers get
one `redis.asyncio` client per event loop (closed with the loop, like the provider
connections); threads (the settings listener, `settings.update`, the CLI) share one
synchronous client per URL.

Redis is a helper, never a single point of failure: every use goes through `Link`, which
turns a Redis error into `RedisDown` for the caller's fallback (the response cache is
skipped, limits and budgets fall back to the database, sessions and login throttling to
the instance's own memory). The first failure is logged once, then Redis is left alone
for `BACKOFF` seconds (a call does not pay a connect timeout while it is down), and its
return is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..outage import Outage

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["BACKOFF", "ENV", "Link", "RedisDown", "link", "redis_url", "reset"]

log = logging.getLogger("synapse.scale")

ENV = "SYNAPSE_REDIS_URL"
#: Seconds Redis is left alone after a failure before the next try.
BACKOFF = 2.0
#: Seconds to connect, and to wait for one answer: Redis answers in well under a millisecond.
CONNECT_TIMEOUT = 0.5
SOCKET_TIMEOUT = 2.0

T = TypeVar("T")


class RedisDown(Exception):
    """Redis could not be used just now: the caller falls back."""


def redis_url(settings: Mapping[str, Any] | None = None) -> str:
    """The Redis of these settings ("" when none): SYNAPSE_REDIS_URL, else the `redis_url` setting."""
    url = os.environ.get(ENV, "").strip()
    if not url and settings is not None:
        url = str(settings.get("redis_url") or "").strip()
    return url


def _shown(url: str) -> str:
    """The URL without its password, for the log."""
    from ..settings import shown

    return str(shown("redis_url", url))


class Link:
    """One Redis URL: its clients and its health (down, since when, said so)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outage = Outage(BACKOFF)
        self._lock = threading.Lock()
        self._sync: "redis.Redis | None" = None
        self._async: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis]" = (
            weakref.WeakKeyDictionary()
        )

    # --- health -------------------------------------------------------------------------

    def available(self) -> bool:
        """False while a recent failure says Redis is down (no call waits on it then)."""
        return self.outage.available()

    def failed(self, exc: BaseException, what: str) -> RedisDown:
        if self.outage.failed():
            log.warning("Redis at %s is unreachable (%s: %s) while %s; falling back (the response cache is skipped, "
                        "limits use the database) until it is back", _shown(self.url), type(exc).__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "", what)
        return RedisDown(str(exc))

    def succeeded(self) -> None:
        down = self.outage.succeeded()
        if down is not None:
            log.warning("Redis at %s is back after %.1f s", _shown(self.url), down)

    # --- clients -------------------------------------------------------------------------

    def sync(self) -> "redis.Redis":
        if self._sync is None:
            import redis

            with self._lock:
                if self._sync is None:
                    self._sync = redis.Redis.from_url(
                        self.url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT,
                        health_check_interval=30,
                    )
        return self._sync

    def aio(self) -> "redis.asyncio.Redis":
        """The running loop's client (closed when that loop closes)."""
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(
                self.url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT,
                health_check_interval=30,
            )
            self._async[loop] = client
            from ..providers.transport import close_with_loop

            close_with_loop(loop, client.aclose)
        return client

    # --- calls ---------------------------------------------------------------------------

    async def run(self, what: str, fn: Callable[["redis.asyncio.Redis"], Awaitable[T]]) -> T:
        """`await fn(client)`, or RedisDown (logged once) when Redis cannot answer."""
        with self._guard(what):
            return await fn(self.aio())

    def run_sync(self, what: str, fn: Callable[["redis.Redis"], T]) -> T:
        with self._guard(what):
            return fn(self.sync())

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Redis errors -> RedisDown (and the health bookkeeping); nothing tried while backing off."""
        if not self.available():
            raise RedisDown("backing off")
        try:
            yield
        except Exception as exc:
            if _is_redis_error(exc):
                raise self.failed(exc, what) from None
            raise
        self.succeeded()

    def close(self) -> None:
        if self._sync is not None:
            try:
                self._sync.close()
            except Exception:
                pass
            self._sync = None


def _is_redis_error(exc: BaseException) -> bool:
    import redis.exceptions

    return isinstance(exc, (redis.exceptions.RedisError, OSError, asyncio.TimeoutError))


_links: dict[str, Link] = {}
_links_lock = threading.Lock()


def link(settings: Mapping[str, Any] | None = None, url: str | None = None) -> Link | None:
    """The Link of these settings' Redis, or None when no Redis is configured."""
    url = url if url is not None else redis_url(settings)
    if not url:
        return None
    found = _links.get(url)
    if found is None:
        with _links_lock:
            found = _links.get(url)
            if found is None:
                found = _links[url] = Link(url)
    return found


def reset() -> None:
    """Forget every link (tests)."""
    with _links_lock:
        for one in _links.values():
            one.close()
        _links.clear()
