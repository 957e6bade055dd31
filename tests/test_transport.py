"""The shared transport: SSE and NDJSON framing over split reads, Retry-After, retry policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from typing import Any

import pytest
from aiohttp import web

from synapse.errors import (
    AuthenticationError,
    BadRequestError,
    RateLimitError,
    UpstreamUnavailableError,
)
from synapse.providers import transport
from synapse.providers.base import Adapter
from synapse.providers.catalog import ProviderConfig, get
from synapse.types import Request, Response, StreamEvent
from tests.fakes.base import FakeServer


class ChunkServer(FakeServer):
    """Answers GET /raw with `self.chunks`, each written and flushed separately."""

    name = "chunks"

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []
        self.status = 200

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/raw", self.raw), web.post("/json", self.json_ok)]

    async def raw(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=self.status, headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in self.chunks:
            await resp.write(chunk)
            await asyncio.sleep(0.001)
        await resp.write_eof()
        return resp

    async def json_ok(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})


class Dummy(Adapter):
    async def chat(self, req: Request) -> Response:  # pragma: no cover - not used
        raise NotImplementedError

    async def stream(self, req: Request) -> AsyncIterator[StreamEvent]:  # pragma: no cover
        raise NotImplementedError
        yield


@pytest.fixture(scope="module")
def server() -> Iterator[ChunkServer]:
    s = ChunkServer().start()
    yield s
    s.stop()


@pytest.fixture
def adapter(server: ChunkServer) -> Dummy:
    server.reset()
    server.status = 200
    return Dummy(get("openai"), ProviderConfig(api_key="sk-test-transport-key", base_url=server.url, max_retries=2))


async def collect_sse(server: ChunkServer, adapter: Dummy, chunks: list[bytes]) -> list[tuple[str | None, bytes]]:
    server.chunks = chunks
    async with await transport.open_stream(adapter, "GET", server.url + "/raw", headers={}) as resp:
        return [(e.event, e.data) async for e in transport.iter_sse(resp, adapter)]


async def test_sse_events_split_anywhere_across_reads(server: ChunkServer, adapter: Dummy) -> None:
    body = (
        b": keep-alive\n\n"
        b"event: message_start\ndata: {\"a\": 1}\n\n"
        b"data: line one\ndata: line two\n\n"
        b"event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
        b"id: 7\nretry: 100\ndata: [DONE]\n\n"
    )
    expected = [
        ("message_start", b'{"a": 1}'),
        (None, b"line one\nline two"),
        ("ping", b'{"type": "ping"}'),
        (None, b"[DONE]"),
    ]
    # one byte at a time, then everything at once, then odd splits
    assert await collect_sse(server, adapter, [body[i : i + 1] for i in range(len(body))]) == expected
    assert await collect_sse(server, adapter, [body]) == expected
    assert await collect_sse(server, adapter, [body[:17], body[17:50], body[50:]]) == expected


async def test_sse_raw_json_lines_come_out_as_raw_event(server: ChunkServer, adapter: Dummy) -> None:
    body = b'data: {"x": 1}\r\n\r\n{\r\n  "error": {"code": 500}\r\n}\r\n'
    events = await collect_sse(server, adapter, [body])
    assert events[0] == (None, b'{"x": 1}')
    assert events[1][0] == "__raw__"
    assert transport.loads(events[1][1]) == {"error": {"code": 500}}


async def test_last_event_without_trailing_blank_line_is_kept(server: ChunkServer, adapter: Dummy) -> None:
    assert await collect_sse(server, adapter, [b"data: tail"]) == [(None, b"tail")]


async def test_ndjson_lines(server: ChunkServer, adapter: Dummy) -> None:
    server.chunks = [b'{"a":', b' 1}\n\n{"b": 2}\n{"c"', b": 3}"]
    async with await transport.open_stream(adapter, "GET", server.url + "/raw", headers={}) as resp:
        assert [x async for x in transport.iter_ndjson(resp, adapter)] == [{"a": 1}, {"b": 2}, {"c": 3}]


async def test_ndjson_garbage_is_a_protocol_error(server: ChunkServer, adapter: Dummy) -> None:
    server.chunks = [b'{"a": 1}\nnot json\n']
    async with await transport.open_stream(adapter, "GET", server.url + "/raw", headers={}) as resp:
        with pytest.raises(UpstreamUnavailableError, match="not JSON"):
            [x async for x in transport.iter_ndjson(resp, adapter)]


def test_retry_after_parsing() -> None:
    assert transport.parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert transport.parse_retry_after({"retry-after": "2"}) == 2.0
    assert transport.parse_retry_after({"retry-after": "0.25"}) == 0.25
    in_a_minute = transport.parse_retry_after({"retry-after": formatdate(time.time() + 60, usegmt=True)})
    assert in_a_minute is not None and 55 < in_a_minute <= 61
    assert transport.parse_retry_after({"retry-after": "soon"}) is None
    assert transport.parse_retry_after({}) is None


async def test_429_is_retried_after_the_delay_it_asks_for(server: ChunkServer, adapter: Dummy) -> None:
    server.fail_next(429, {"error": {"message": "slow down"}}, {"retry-after-ms": "30"}, times=2)
    t0 = time.perf_counter()
    result = await transport.request(adapter, "POST", server.url + "/json", headers={})
    assert result.json() == {"ok": True}
    assert len(server.requests) == 3
    assert time.perf_counter() - t0 >= 0.06


async def test_retries_stop_after_max_retries(server: ChunkServer, adapter: Dummy) -> None:
    server.fail_next(503, {"error": {"message": "busy"}}, {"retry-after": "0"}, times=5)
    with pytest.raises(UpstreamUnavailableError, match="HTTP 503"):
        await transport.request(adapter, "POST", server.url + "/json", headers={})
    assert len(server.requests) == 3  # 1 + max_retries


async def test_retry_after_beyond_the_cap_is_reported_not_slept(server: ChunkServer, adapter: Dummy) -> None:
    server.fail_next(429, {"error": {"message": "quota"}}, {"retry-after": "3600"})
    with pytest.raises(RateLimitError) as info:
        await transport.request(adapter, "POST", server.url + "/json", headers={})
    assert info.value.retry_after == 3600 and len(server.requests) == 1


@pytest.mark.parametrize(("status", "error"), [(400, BadRequestError), (401, AuthenticationError)])
async def test_client_errors_are_not_retried(server: ChunkServer, adapter: Dummy, status: int, error: type) -> None:
    server.fail_next(status, {"error": {"message": "nope sk-test-transport-key"}}, times=3)
    with pytest.raises(error) as info:
        await transport.request(adapter, "POST", server.url + "/json", headers={})
    assert len(server.requests) == 1
    assert "sk-test-transport-key" not in str(info.value)


async def test_x_should_retry_false_wins_over_status(server: ChunkServer, adapter: Dummy) -> None:
    server.fail_next(500, {"error": {"message": "boom"}}, {"x-should-retry": "false"})
    with pytest.raises(UpstreamUnavailableError):
        await transport.request(adapter, "POST", server.url + "/json", headers={})
    assert len(server.requests) == 1


async def test_dropped_connection_is_retried(server: ChunkServer, adapter: Dummy) -> None:
    server.drop_next()
    assert (await transport.request(adapter, "POST", server.url + "/json", headers={})).json() == {"ok": True}
    assert len(server.requests) == 2


async def test_refused_connection_says_where_and_what_to_check(adapter: Dummy) -> None:
    from tests.fakes.base import free_port

    url = f"http://127.0.0.1:{free_port()}/json"
    adapter.config = ProviderConfig(base_url=url, max_retries=0)
    with pytest.raises(UpstreamUnavailableError) as info:
        await transport.request(adapter, "POST", url, headers={})
    assert "cannot reach OpenAI at 127.0.0.1" in str(info.value) and "openai_base_url" in str(info.value)


async def test_one_pooled_session_per_loop() -> None:
    first = transport.session()
    assert transport.session() is first
    other: list[Any] = []

    def in_other_loop() -> None:
        async def grab() -> None:
            other.append(transport.session())
            await transport.close_session()

        asyncio.run(grab())

    await asyncio.to_thread(in_other_loop)
    assert other[0] is not transport.session()
    assert transport.session() is first  # another loop using (and closing) its own left this one's pool
    await first.close()  # closed behind the transport's back: the next call gets a new session
    assert transport.session() is not first and not transport.session().closed


async def test_proxy_environment_is_read_only_when_a_proxy_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    await transport.close_session()
    assert transport.session().trust_env is False
    await transport.close_session()
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert transport.session().trust_env is True
