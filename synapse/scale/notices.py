"""The settings-changed notice: Redis pub/sub, so a save on one instance is live on all.

A save publishes `{"keys": [...], "by": <instance>}` on `CHANNEL`; every process in scale
mode runs one `Listener` thread subscribed to it, which drops the process's copy of the
settings (settings_store.Store.invalidate), so the next read (the next request) sees the
save. A listener that loses Redis drops the copy too (it may have missed a notice),
reconnects with backoff, and meanwhile the copy is re-read every second (Store.POLL).
Other per-process copies that follow settings (adapters, status checks) key on the
settings' values, so they follow by themselves.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings_store import Store

__all__ = ["CHANNEL", "INSTANCE", "Listener", "publish"]

log = logging.getLogger("synapse.scale")

CHANNEL = "synapse:settings-changed"
#: This process, as named in the notices it sends.
INSTANCE = f"{os.uname().nodename}:{os.getpid()}"


def publish(store: "Store", keys: Sequence[str]) -> bool:
    """Tell every instance that these settings changed. False when Redis could not be told
    (the others see the change within their poll interval instead)."""
    from .shared import RedisDown, link

    one = link(url=store.redis)
    if one is None:
        return False
    message = json.dumps({"keys": list(keys), "by": INSTANCE})
    try:
        one.run_sync("publishing a settings change", lambda r: r.publish(CHANNEL, message))
    except RedisDown:
        return False
    return True


class Listener(threading.Thread):
    """Subscribed to CHANNEL for the life of the process (a daemon thread)."""

    def __init__(self, url: str, store: "Store") -> None:
        super().__init__(name="synapse-settings-listener", daemon=True)
        self.url = url
        self.store = store
        self.connected = False
        self._stop = threading.Event()
        self._pubsub: Any = None
        self.notices = 0

    def stop(self) -> None:
        self._stop.set()
        pubsub = self._pubsub
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:
                pass

    def run(self) -> None:
        import redis

        delay = 0.2
        said = False
        while not self._stop.is_set():
            try:
                client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_keepalive=True,
                                              health_check_interval=5)
                self._pubsub = pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self.connected = True
                self.store.invalidate()  # notices sent while we were away are lost: read again
                if said:
                    log.warning("settings: listening for changes on Redis again")
                said, delay = False, 0.2
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.notices += 1
                        self.store.invalidate()
                        self.store.refresh()  # here, not in the next request's event loop
            except Exception as exc:
                if self._stop.is_set():
                    break
                if not said:
                    said = True
                    log.warning("settings: cannot listen for changes on Redis (%s); re-reading the settings every "
                                "second until it is back", type(exc).__name__)
            finally:
                self.connected = False
                self.store.invalidate()
                try:
                    if self._pubsub is not None:
                        self._pubsub.close()
                except Exception:
                    pass
                self._pubsub = None
            self._stop.wait(delay)
            delay = min(delay * 2, 5.0)
