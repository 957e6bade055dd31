"""Connection guards for uvicorn: a header-read timeout and a cap on open connections.

uvicorn (0.54) arms its keep-alive timer only after a response, so a socket that connects
and never sends a byte, or trickles a header a byte at a time, stays open for ever; 1,100
of them used up the process's file limit. `limit_concurrency` does not help: it answers
503 once the request's headers are in, and an idle socket never gets that far.

Nor does anything bound the size of a request head with httptools: it keeps every header
it is fed (2 MB of headers were accepted in a probe).

`guarded(header_timeout, max_connections, max_head)` is uvicorn's protocol with guards:

* a connection must deliver a complete request head within `header_timeout` seconds of
  opening, and again after each response (a keep-alive connection waiting for its next
  request); otherwise it is closed;
* a request head over `max_head` bytes is answered 431 and the connection closed;
* past `max_connections` open connections, a new one is answered 503 and closed at once,
  so the server keeps the file descriptors it needs to answer the others.

It also sends a response's head and body in one write (`_OneWrite`): uvicorn writes the
head as soon as the app starts the response, then the body, two system calls and two
TCP segments for an answer of a few hundred bytes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional for uvicorn; h11 then
    HttpToolsProtocol = None  # type: ignore[assignment, misc]

__all__ = ["BUSY", "HEAD_TOO_LARGE", "QUIET_PREFIX", "guarded"]

#: Requests under this path are not access-logged (the /v1 gateway).
QUIET_PREFIX = "/v1/"


def _reply(status: bytes, detail: bytes, extra: bytes = b"") -> bytes:
    body = b'{"detail":"' + detail + b'"}'
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n" + extra + b"connection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


BUSY = _reply(b"503 Service Unavailable", b"the server has too many open connections: try again in a few seconds",
              b"retry-after: 5\r\n")
HEAD_TOO_LARGE = _reply(b"431 Request Header Fields Too Large", b"the request line and headers are too large")


class _Guard:
    """The guards, mixed into uvicorn's protocol classes; the limits come as keyword arguments."""

    # set by uvicorn's protocol __init__ / connection_made
    loop: asyncio.AbstractEventLoop
    transport: Any
    cycle: Any
    connections: set[Any]

    def __init__(self, *args: Any, header_timeout: float, max_connections: int, max_head: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = (header_timeout, max_connections, max_head)
        self._header_timer: asyncio.TimerHandle | None = None
        self._head_for: Any = None
        self._head_due = 0.0
        self._head_bytes = 0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if len(self.connections) > self._limits[1]:
            transport.write(BUSY)
            transport.close()
            return
        self._await_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if not self._awaiting_head():
            return  # the head is in; this is body or the next request
        self._head_bytes += len(data)
        if self._head_bytes > self._limits[2] and not self.transport.is_closing():
            self._cancel_head_timer()
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def _awaiting_head(self) -> bool:
        """No request is being answered, and no new head is complete yet."""
        waiting_after = self._head_for
        return self.cycle is waiting_after and (waiting_after is None or waiting_after.response_complete)

    def _await_head(self) -> None:
        """Start the clock for the next request head; `self.cycle` changes when it is in.

        One timer per connection, not one per request: a keep-alive connection answering
        thousands of requests a second only moves the deadline; the timer, when it fires,
        re-arms itself for the later deadline (or finds a request being answered and waits
        for its response to start the clock again)."""
        self._head_for, self._head_bytes = self.cycle, 0
        self._head_due = self.loop.time() + self._limits[0]
        if self._header_timer is None:
            self._header_timer = self.loop.call_at(self._head_due, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _head_timed_out(self) -> None:
        self._header_timer = None
        if not self._awaiting_head():
            return  # a head arrived in time (or a pipelined request is answered): re-armed after its response
        if self.loop.time() < self._head_due:  # the clock restarted after this timer was set
            self._header_timer = self.loop.call_at(self._head_due, self._head_timed_out)
            return
        if not self.transport.is_closing():
            self.transport.close()


class _HeadHolder:
    """The transport a request's cycle writes to: the response head waits for the rest of
    the current event-loop step, so a body sent in the same step leaves with it in one
    write. A stream's head still goes out at the end of that step (nothing waits for its
    first event); every other write, and close, passes what is held first."""

    __slots__ = ("_transport", "_held", "_flush")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        elif self._flush is None:  # the first write of the cycle: its head
            self._held = data
            self._flush = asyncio.get_running_loop().call_soon(self._send_held)
            return
        self._transport.write(data)

    def _send_held(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._send_held()
        self._transport.close()

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())


class _OneWrite:
    """Gives each request's cycle a `_HeadHolder` in front of the connection's transport."""

    cycle: Any

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()  # type: ignore[misc]
        cycle = self.cycle
        if cycle is not before and cycle is not None:
            cycle.transport = _HeadHolder(cycle.transport)


class _QuietGateway:
    """Leaves /v1 requests out of the access log before a log record is made for them:
    the usage ledger records every call, and at thousands a second the access line
    (made, then dropped by a filter) was a visible part of a request's cost.
    `root.NoGatewayAccessLines` still filters them for the h11 protocol."""

    cycle: Any

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()  # type: ignore[misc]
        cycle = self.cycle
        if cycle is not before and cycle is not None and cycle.scope["path"].startswith(QUIET_PREFIX):
            cycle.access_log = False


class GuardedH11Protocol(_Guard, H11Protocol):
    pass


if HttpToolsProtocol is not None:

    class GuardedHttpToolsProtocol(_Guard, _QuietGateway, _OneWrite, HttpToolsProtocol):
        pass


def guarded(header_timeout: float, max_connections: int, max_head: int = 64 * 1024) -> Callable[..., Any]:
    """uvicorn's `http=` protocol factory with the guards: httptools when installed, else h11.

    A `functools.partial` of a module-level class, so a config with it can be pickled
    into worker processes (`uvicorn --workers` spawns them).
    """
    cls: type[_Guard] = GuardedHttpToolsProtocol if HttpToolsProtocol is not None else GuardedH11Protocol
    return functools.partial(cls, header_timeout=header_timeout, max_connections=max_connections, max_head=max_head)
