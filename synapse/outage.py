"""A shared service's health as this process sees it (the database of the web logins,
Redis in scale mode): when it went down, and until when callers leave it alone.

Callers log the first failure of an outage and the service's return, once each, and in
between skip the service for `backoff` seconds after each failure, so no request pays a
connect timeout while it is down.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Outage"]


class Outage:
    """Down since when, left alone until when; safe to share between threads."""

    def __init__(self, backoff: float) -> None:
        self.backoff = backoff
        self._down_until = 0.0
        self._down_since = 0.0
        self._lock = threading.Lock()

    def available(self) -> bool:
        """False while a recent failure says to leave the service alone."""
        return time.monotonic() >= self._down_until

    def failed(self) -> bool:
        """Note a failure; True when it starts an outage (the caller logs it then)."""
        now = time.monotonic()
        with self._lock:
            first = self._down_since == 0.0
            if first:
                self._down_since = now
            self._down_until = now + self.backoff
        return first

    def succeeded(self) -> float | None:
        """Note a success; how long the outage it ends lasted (the caller logs it), if any."""
        if not self._down_since:
            return None
        with self._lock:
            since, self._down_since = self._down_since, 0.0
        return time.monotonic() - since if since else None
