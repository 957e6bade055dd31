"""Logged-in web sessions in Redis, so a login on one instance is a login on all.

The session id stays in the browser's cookie; Redis holds `synapse:session:<sha256 of the
id>` -> {"user", "expires"} with the session's TTL (the id itself is never stored, so a
copy of Redis cannot be replayed as cookies). CSRF tokens need nothing stored: they are an
HMAC of the id under a key every instance derives from SYNAPSE_SECRET_KEY
(secrets.csrf_secret).

Redis down: sessions fall back to the instance's own memory (`auth.SessionStore`): a login
made then holds on that instance only, and logins kept in Redis come back with it.
"""

from __future__ import annotations

import hashlib
import json
import time

from ..server.auth import Session, SessionStore
from .shared import Link, RedisDown

__all__ = ["SharedSessionStore"]

PREFIX = "synapse:session:"


def _key(session_id: str) -> str:
    return PREFIX + hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


class SharedSessionStore(SessionStore):
    def __init__(self, link: Link, *, secret: bytes | None = None, ttl: float | None = None) -> None:
        super().__init__(secret=secret) if ttl is None else super().__init__(secret=secret, ttl=ttl)
        self.link = link

    async def aget(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        try:
            raw = await self.link.run("reading a login session", lambda r: r.get(_key(session_id)))
        except RedisDown:
            return self.get(session_id)
        if raw is None:
            return self.get(session_id)  # one made here while Redis was down
        data = json.loads(raw)
        if data.get("expires", 0) < time.time():
            return None
        return Session(id=session_id, csrf=self.csrf_for(session_id), user=data.get("user"), expires=data["expires"])

    async def alogin(self, user: str) -> Session:
        session = self._new(user)
        payload = json.dumps({"user": user, "expires": session.expires})
        try:
            await self.link.run("storing a login session",
                                lambda r: r.set(_key(session.id), payload, px=max(1, int(self.ttl * 1000))))
        except RedisDown:
            self._keep(session)
        return session

    async def adrop(self, session_id: str) -> None:
        self.drop(session_id)
        try:
            await self.link.run("ending a login session", lambda r: r.delete(_key(session_id)))
        except RedisDown:
            pass
