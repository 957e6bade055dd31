"""The shared machinery of every fake provider server.

A fake runs an aiohttp.web application on 127.0.0.1 (a free port) in its own thread
and event loop, so sync code, async tests and CLI subprocesses can all talk to it.
It records every request it receives, and a test steers it with two queues:

* `fake.reply(FakeReply(...))` scripts the next successful answer (text, tool calls,
  reasoning, usage); without one the fake answers deterministically from the prompt.
* `fake.fail_next(status, body, headers)` makes the next request fail before any
  handler runs, exactly as the provider's front door would (429, 503, 529, ...).
  `fake.drop_next()` closes the connection without answering.
  `fake.hang_next(seconds)` holds the next request that long before answering it
  normally (a provider that hangs; the handler is cancelled if the client gives up).

Protocol modules subclass `FakeServer`, add their routes in `routes()`, and render
`FakeReply` in their own wire format.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class FakeToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class FakeReply:
    """What the fake model says next. Usage fields left None are computed from the prompt."""

    text: str = ""
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    reasoning: str = ""
    stop_reason: str | None = None  # protocol's own word; None: derived (tool use / end)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    #: Streaming only: close the connection after this many events (a mid-stream drop).
    break_after_events: int | None = None
    #: Streaming only: send an in-stream error event after this many events.
    error_after_events: int | None = None
    #: Provider-side tools, used only when the request enables them: the query a web
    #: search ran and the (url, title) pages it found (the text cites them); code the
    #: model ran on the provider's side and what it printed.
    search_query: str | None = None
    sources: list[tuple[str, str]] = field(default_factory=list)
    code: str | None = None
    code_output: str = ""
    #: Chat Completions: send this as `message.content` (and as one more delta) verbatim,
    #: for content shapes a client may not understand.
    raw_content: Any = None
    #: Streaming only: seconds to wait after each event (a slow model).
    event_delay: float = 0.0
    #: Streaming only: a `threading.Semaphore(1)` the test releases once for each text event
    #: it has received; the fake sends the next text event only then. A client that holds
    #: events back never releases it: the fake's wait runs out (`step_timeouts`).
    step: Any = None


async def pace(fake: "FakeServer", reply: FakeReply, text_event: bool) -> None:
    """Before a streamed event: the reply's delay, and for a stepped reply's text events the
    test's go-ahead (see `FakeReply.step`)."""
    if reply.event_delay:
        await asyncio.sleep(reply.event_delay)
    if text_event and reply.step is not None and not await asyncio.to_thread(reply.step.acquire, True, 5.0):
        fake.step_timeouts += 1


@dataclass
class Fault:
    status: int
    body: bytes
    headers: dict[str, str]
    drop: bool = False
    #: Seconds to hold the request before answering it normally (status unused).
    hang: float | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def estimate_tokens(text: str) -> int:
    """The fakes' tokenizer: about four characters a token, at least one for non-empty text."""
    return max(1, len(text) // 4) if text else 0


class FakeServer:
    """Base class: a threaded aiohttp server with request recording and fault injection."""

    #: Provider name used in default replies.
    name = "fake"

    def __init__(self, valid_keys: set[str] | None = None) -> None:
        self.valid_keys = set(valid_keys or {f"test-key-{self.name}"})
        self.requests: list[RecordedRequest] = []
        #: How many requests ended because the client went away mid-answer.
        self.aborted = 0
        #: How many times a stepped reply (`FakeReply.step`) waited in vain for the client.
        self.step_timeouts = 0
        self._faults: deque[Fault] = deque()
        self._replies: deque[FakeReply] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeServer":
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_app())
            except BaseException as exc:  # pragma: no cover - startup failure
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
            loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    async def _start_app(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_routes(self.routes())
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        self.port = free_port()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        self.aborted = 0
        self.step_timeouts = 0
        self.requests.clear()
        self._faults.clear()
        self._replies.clear()

    # --- steering --------------------------------------------------------------------

    def reply(self, *replies: FakeReply) -> None:
        self._replies.extend(replies)

    def next_reply(self) -> FakeReply | None:
        return self._replies.popleft() if self._replies else None

    def fail_next(self, status: int, body: Any, headers: dict[str, str] | None = None, times: int = 1) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        for _ in range(times):
            self._faults.append(Fault(status, raw, hdrs))

    def drop_next(self, times: int = 1) -> None:
        for _ in range(times):
            self._faults.append(Fault(0, b"", {}, drop=True))

    def hang_next(self, seconds: float, times: int = 1) -> None:
        for _ in range(times):
            self._faults.append(Fault(0, b"", {}, hang=seconds))

    # --- to be provided by each protocol --------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    # --- internals -------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        if self._faults:
            fault = self._faults.popleft()
            if fault.hang is not None:
                await asyncio.sleep(fault.hang)
                return await handler(request)
            if fault.drop:
                assert request.transport is not None
                request.transport.close()
                raise ConnectionResetError("fake dropped the connection")
            return web.Response(status=fault.status, body=fault.body, headers=fault.headers)
        try:
            return await handler(request)
        except (asyncio.CancelledError, ConnectionResetError):
            self.aborted += 1
            raise

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]
