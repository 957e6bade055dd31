"""The response cache in Redis: one cache for every instance, entries expiring with their TTL.

Keys (every one with the entry's TTL, so Redis drops them itself):

* `synapse:rc:<exact key>` -> the response (the same bytes the file cache stores);
* `synapse:rcv:<scope>` -> a hash of exact key -> float32 vector, for semantic matching
  within a scope (its TTL is renewed by each put; a field whose entry has expired is
  removed when a lookup meets it).

Redis down: a lookup is a miss and a write is skipped (`shared.Link` logs it once), so a
call goes to the provider as if the cache were off.
"""

from __future__ import annotations

import threading
from typing import Any

from ..caching import _dump_response, _load_response, most_similar
from ..types import Response
from .shared import Link, RedisDown, link

__all__ = ["RedisResponseCache", "redis_cache"]

PREFIX = "synapse:rc:"
VECTORS = "synapse:rcv:"


class RedisResponseCache:
    def __init__(self, link: Link, ttl: float, threshold: float) -> None:
        self.link = link
        self.ttl = ttl
        self.threshold = threshold

    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    async def aget(self, key: str) -> Response | None:
        if self.ttl <= 0:
            return None
        try:
            raw: Any = await self.link.run("reading the response cache", lambda r: r.get(PREFIX + key))
        except RedisDown:
            return None
        return _load_response(raw) if raw else None

    async def aget_similar(self, scope: str, vector: list[float]) -> Response | None:
        if self.ttl <= 0:
            return None
        try:
            stored: Any = await self.link.run("reading the response cache", lambda r: r.hgetall(VECTORS + scope))
            if not stored:
                return None
            keys = list(stored)
            best = most_similar([stored[k] for k in keys], vector, self.threshold)
            if best is None:
                return None
            key = keys[best].decode()
            raw: Any = await self.link.run("reading the response cache", lambda r: r.get(PREFIX + key))
            if raw is None:  # the entry expired before its vector did
                await self.link.run("cleaning the response cache", lambda r: r.hdel(VECTORS + scope, key))
                return None
        except RedisDown:
            return None
        return _load_response(raw)

    async def aput(self, key: str, model: str, response: Response, scope: str | None = None,
                   vector: list[float] | None = None) -> None:
        if self.ttl <= 0:
            return
        blob = _dump_response(response)
        ttl = self._ttl_ms()

        async def write(r: Any) -> None:
            async with r.pipeline(transaction=False) as pipe:
                pipe.set(PREFIX + key, blob, px=ttl)
                if scope is not None and vector is not None:
                    import numpy as np

                    pipe.hset(VECTORS + scope, key, np.asarray(vector, dtype=np.float32).tobytes())
                    pipe.pexpire(VECTORS + scope, ttl)
                await pipe.execute()

        try:
            await self.link.run("writing the response cache", write)
        except RedisDown:
            pass


_caches: dict[tuple[str, float, float], RedisResponseCache] = {}
_lock = threading.Lock()


def redis_cache(url: str, ttl: float, threshold: float) -> RedisResponseCache:
    key = (url, ttl, threshold)
    found = _caches.get(key)
    if found is None:
        one = link(url=url)
        assert one is not None
        with _lock:
            found = _caches.setdefault(key, RedisResponseCache(one, ttl, threshold))
    return found
