"""Login throttling: attempts are counted before the password is checked.

Three sliding windows, all of which must have room for an attempt to be checked:

* one client and one username: 5 a minute (a user who mistypes);
* one username from any client: 10 in 5 minutes (guessing from many addresses);
* one client for any username: 20 in 5 minutes (spraying names from one address).

`attempt()` reserves a slot in all three at once, under one lock, so 40 parallel wrong
passwords get 5 checks and 35 refusals (checking first and counting after the slow
scrypt check let all 40 through). A login that succeeds gives its slot back.
The tables are bounded: stale keys are dropped, and the oldest when there are too many.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LoginThrottle", "Window"]


@dataclass(frozen=True, slots=True)
class Window:
    limit: int
    seconds: float


class _Counter:
    """Timestamps of recent attempts per key, within one window."""

    def __init__(self, window: Window, max_keys: int) -> None:
        self.window = window
        self.max_keys = max_keys
        self.hits: dict[str, deque[float]] = {}

    def recent(self, key: str, now: float) -> deque[float]:
        q = self.hits.get(key)
        if q is None:
            return deque()
        while q and now - q[0] >= self.window.seconds:
            q.popleft()
        if not q:
            del self.hits[key]
        return q

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may try again (0 when it may now)."""
        q = self.recent(key, now)
        if len(q) < self.window.limit:
            return 0.0
        return max(0.0, q[0] + self.window.seconds - now)

    def add(self, key: str, now: float) -> None:
        q = self.hits.pop(key, None)
        if q is None:
            q = deque()
            if len(self.hits) >= self.max_keys:
                self._shrink(now)
        q.append(now)
        self.hits[key] = q  # re-inserted: the dict stays ordered by last attempt

    def remove(self, key: str, stamp: float) -> None:
        q = self.hits.get(key)
        if q is not None:
            try:
                q.remove(stamp)
            except ValueError:
                pass

    def _shrink(self, now: float) -> None:
        self.hits = {k: q for k, q in self.hits.items() if q and now - q[-1] < self.window.seconds}
        while len(self.hits) >= self.max_keys:
            del self.hits[next(iter(self.hits))]


class LoginThrottle:
    PAIR = Window(5, 60.0)
    USER = Window(10, 300.0)
    CLIENT = Window(20, 300.0)

    def __init__(
        self,
        pair: Window = PAIR,
        user: Window = USER,
        client: Window = CLIENT,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pair = _Counter(pair, max_keys)
        self._user = _Counter(user, max_keys)
        self._client = _Counter(client, max_keys)
        self._lock = threading.Lock()
        self._clock = clock

    def attempt(self, client: str, username: str) -> tuple[float, float]:
        """Reserve one attempt. Returns (stamp, 0) when allowed, or (0, seconds to wait)."""
        keys = self._keys(client, username)
        with self._lock:
            now = self._clock()
            wait = max(counter.wait(key, now) for counter, key in keys)
            if wait > 0:
                return 0.0, wait
            for counter, key in keys:
                counter.add(key, now)
            return now, 0.0

    def succeeded(self, client: str, username: str, stamp: float) -> None:
        """A right password: its attempt does not count against anyone."""
        with self._lock:
            for counter, key in self._keys(client, username):
                counter.remove(key, stamp)

    # The web app's interface; scale mode's throttle (synapse/scale/throttle.py) counts in Redis.

    async def aattempt(self, client: str, username: str) -> tuple[float, float]:
        return self.attempt(client, username)

    async def asucceeded(self, client: str, username: str, stamp: float) -> None:
        self.succeeded(client, username, stamp)

    def size(self) -> int:
        return len(self._pair.hits) + len(self._user.hits) + len(self._client.hits)

    def _keys(self, client: str, username: str) -> list[tuple[_Counter, str]]:
        user = username.strip().lower()[:128]
        return [(self._pair, f"{client}\0{user}"), (self._user, user), (self._client, client)]
