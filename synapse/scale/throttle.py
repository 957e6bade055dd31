"""Login throttling counted in Redis: the same three windows as `server/throttle.py`, shared
by every instance, so a guesser gains nothing by spreading attempts over them.

Each window is a sorted set of attempt stamps (Redis server time, so instances' clocks do
not matter); one Lua script drops stamps older than each window, refuses when any window
is full (answering how long to wait), and otherwise adds the attempt to all three: the
check and the count are one atomic step across instances. A login that succeeds removes
its attempt again. Redis down: the instance's own throttle counts (logged once).
"""

from __future__ import annotations

import os
from typing import Any

from ..server.throttle import LoginThrottle
from .shared import Link, RedisDown

__all__ = ["SharedLoginThrottle"]

PREFIX = "synapse:login:"

_ATTEMPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
for i = 1, 3 do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local w = tonumber(oldest[2]) + window - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return {'0', tostring(wait)} end
for i = 1, 3 do
  redis.call('ZADD', KEYS[i], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], math.ceil(tonumber(ARGV[2 * i + 1]) * 1000))
end
return {ARGV[1], '0'}
"""


class SharedLoginThrottle(LoginThrottle):
    def __init__(self, link: Link, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.link = link
        self._script: Any = None
        #: stamp -> the member added to the windows (to give a successful login's slot back).
        self._members: dict[float, str] = {}

    def _redis_keys(self, client: str, username: str) -> list[str]:
        return [PREFIX + name for name in (f"pair:{k}" if i == 0 else (f"user:{k}" if i == 1 else f"client:{k}")
                                           for i, (_, k) in enumerate(self._keys(client, username)))]

    async def aattempt(self, client: str, username: str) -> tuple[float, float]:
        member = os.urandom(8).hex()
        windows = [self._pair.window, self._user.window, self._client.window]
        args: list[Any] = [member]
        for w in windows:
            args += [w.limit, w.seconds]
        keys = self._redis_keys(client, username)
        try:
            got, wait = await self.link.run("counting a login attempt",
                                            lambda r: r.eval(_ATTEMPT, 3, *keys, *args))
        except RedisDown:
            return self.attempt(client, username)
        if float(wait) > 0:
            return 0.0, float(wait)
        stamp = self._clock()
        self._members[stamp] = member
        while len(self._members) > 4096:  # attempts that failed never come back for theirs
            del self._members[next(iter(self._members))]
        return stamp, 0.0

    async def asucceeded(self, client: str, username: str, stamp: float) -> None:
        member = self._members.pop(stamp, None)
        if member is None:  # counted here while Redis was down
            self.succeeded(client, username, stamp)
            return
        keys = self._redis_keys(client, username)

        async def give_back(r: Any) -> None:
            async with r.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.zrem(key, member)
                await pipe.execute()

        try:
            await self.link.run("giving a login attempt back", give_back)
        except RedisDown:
            pass
