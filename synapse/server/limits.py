"""Request body limits per path prefix, enforced before the body is read (pure ASGI).

    app = BodyLimit(app, {"/api/": 1 * MiB, "/v1/": 20 * MiB, "/": 64 * KiB})

The longest matching prefix wins. A declared Content-Length over the limit is refused at
once with 413, without reading a byte of the body; a chunked body (or one that sends more
than it declared) is counted as it streams in and refused when it crosses the limit, so
a 50 MB POST costs at most the limit in memory, never the 50 MB. The 413 closes the
connection, so the rest of the upload is not read either.

Whatever the app tried to send after the limit was crossed (it may have turned the
failed read into its own 400 or 500) is dropped: the client gets the 413 only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["BodyLimit", "KiB", "MiB"]

KiB = 1024
MiB = 1024 * 1024

Scope = dict[str, Any]
Message = dict[str, Any]


class _TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: Any, limits: Mapping[str, int]) -> None:
        bad = [p for p, n in limits.items() if not p.startswith("/") or not isinstance(n, int) or n < 0]
        if bad:
            raise ValueError(f"body limits need a path prefix starting with / and a byte count >= 0 (bad: {bad[0]!r})")
        self.app = app
        self.limits = dict(limits)
        self._ordered = sorted(self.limits.items(), key=lambda kv: len(kv[0]), reverse=True)

    def limit_for(self, path: str) -> int | None:
        for prefix, limit in self._ordered:
            if path.startswith(prefix) or path == prefix.rstrip("/"):
                return limit
        return None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await _reply(send, 400, "the Content-Length header is not a number")
            return
        if declared is not None and declared > limit:
            await _reply(send, 413, _message(limit), limit=limit)
            return

        received = 0
        over = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, over
            if over:
                raise _TooLarge
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                return  # the app's reaction to the failed read; the 413 replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
        except Exception:
            if not over:
                raise
        if over and not started:
            await _reply(send, 413, _message(limit), limit=limit)


def _content_length(scope: Scope) -> int | None:
    """The declared length; None when absent, -1 when not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                n = int(value)
            except ValueError:
                return -1
            return n if n >= 0 else -1
    return None


def _message(limit: int) -> str:
    size = f"{limit // MiB} MiB" if limit >= MiB and limit % MiB == 0 else (
        f"{limit // KiB} KiB" if limit >= KiB and limit % KiB == 0 else f"{limit} bytes")
    return f"the request body is too large: at most {size} here"


async def _reply(send: Any, status: int, detail: str, **extra: Any) -> None:
    body = orjson.dumps({"detail": detail, **extra})
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
        ],
    })
    await send({"type": "http.response.body", "body": body})
