"""The call deadline (`request_deadline`) and what a timeout says: the total time and the
attempts, never just the per-attempt timeout. Against fakes that hang."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

import synapse
from synapse.errors import ProviderTimeoutError, UpstreamUnavailableError
from synapse.providers import transport
from synapse.providers.catalog import ProviderConfig, get
from tests.fakes.base import FakeServer
from tests.test_transport import Dummy


async def test_the_timeout_message_says_the_attempts_and_the_total_time(
    anthropic: Any, configure: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.01)
    configure(request_timeout=0.2, max_retries=2, request_deadline=60)
    anthropic.hang_next(3, times=3)
    with pytest.raises(ProviderTimeoutError) as caught:
        await synapse.achat("claude-sonnet-4-5", "hi")
    message = str(caught.value)
    assert len(anthropic.requests) == 3
    assert "did not answer: 3 attempts over " in message
    assert "each waiting up to 0.2 s (request_timeout)" in message
    total = float(message.split("attempts over ")[1].split(" s")[0])
    assert total >= 0.6  # three 0.2 s waits


async def test_one_attempt_says_the_request_timeout(anthropic: Any, configure: Any) -> None:
    configure(request_timeout=0.2, max_retries=0)
    anthropic.hang_next(3)
    with pytest.raises(ProviderTimeoutError, match=r"did not answer within 0.2 s \(request_timeout\)"):
        await synapse.achat("claude-sonnet-4-5", "hi")


async def test_the_deadline_ends_a_hung_call_long_before_its_request_timeout(anthropic: Any, configure: Any) -> None:
    configure(request_timeout=30, max_retries=3, request_deadline=0.4)
    anthropic.hang_next(30)
    t0 = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as caught:
        await synapse.achat("claude-sonnet-4-5", "hi")
    waited = time.monotonic() - t0
    said = re.search(r"did not answer within the 0\.4 s request_deadline \(1 attempt over (\d+\.\d) s\)", str(caught.value))
    assert said is not None and float(said[1]) >= 0.4, str(caught.value)  # the time it took, however busy the machine
    assert waited < 10  # not 30 s x 4 attempts
    assert len(anthropic.requests) == 1


async def test_the_deadline_covers_retries(anthropic: Any, configure: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each attempt waits 0.15 s (request_timeout) for a provider that hangs: a 0.6 s deadline
    cuts ten retries short."""
    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.01)
    configure(request_timeout=0.15, max_retries=10, request_deadline=0.6)
    anthropic.hang_next(5, times=10)
    with pytest.raises(ProviderTimeoutError, match="0.6 s request_deadline"):
        await synapse.achat("claude-sonnet-4-5", "hi")
    assert 1 < len(anthropic.requests) < 10


async def test_no_retry_is_started_that_would_pass_the_deadline(anthropic: Any, configure: Any) -> None:
    configure(max_retries=3, request_deadline=1)
    anthropic.fail_next(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                        {"retry-after": "5"})
    t0 = time.monotonic()
    with pytest.raises(synapse.OverloadedError) as caught:
        await synapse.achat("claude-sonnet-4-5", "hi")
    assert time.monotonic() - t0 < 1  # it did not sleep 5 s first
    assert "gave up after 1 attempt" in str(caught.value)
    assert "another attempt would pass the 1 s request_deadline" in str(caught.value)
    assert len(anthropic.requests) == 1


async def test_retried_errors_say_how_many_attempts_were_made(anthropic: Any, configure: Any) -> None:
    configure(max_retries=2)
    body = {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
    anthropic.fail_next(500, body, {"retry-after": "0"}, times=3)
    with pytest.raises(UpstreamUnavailableError, match=r"gave up after 3 attempts over \d+\.\d s"):
        await synapse.achat("claude-sonnet-4-5", "hi")


async def test_a_stream_that_never_starts_is_ended_by_the_deadline(anthropic: Any, configure: Any) -> None:
    configure(request_timeout=30, request_deadline=0.3)
    anthropic.hang_next(30)
    with pytest.raises(ProviderTimeoutError, match="0.3 s request_deadline"):
        async for _ in synapse.astream("claude-sonnet-4-5", "hi"):
            pass


# --- what the deadline covers, on the transport itself -----------------------------------------


class SlowServer(FakeServer):
    """/stream: headers at once, then a chunk every 0.1 s; /slow-body: headers, then a stalled body."""

    name = "slow"

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/stream", self.stream), web.get("/slow-body", self.slow_body)]

    async def stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(5):
            await asyncio.sleep(0.1)
            await resp.write(f"data: {i}\n\n".encode())
        await resp.write_eof()
        return resp

    async def slow_body(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(b'{"partial":')
        await asyncio.sleep(10)
        await resp.write(b"1}")
        return resp


@pytest.fixture(scope="module")
def slow() -> Iterator[SlowServer]:
    s = SlowServer()
    s.start()
    yield s
    s.stop()


def _adapter(server: SlowServer, deadline: float) -> Dummy:
    return Dummy(get("openai"), ProviderConfig(base_url=server.url, timeout=5, max_retries=0, deadline=deadline))


async def test_a_stream_that_started_is_not_cut_by_the_deadline(slow: SlowServer) -> None:
    adapter = _adapter(slow, 0.2)  # the whole stream takes 0.5 s
    async with await transport.open_stream(adapter, "GET", slow.url + "/stream", headers={}) as resp:
        data = [e.data async for e in transport.iter_sse(resp, adapter)]
    assert data == [b"0", b"1", b"2", b"3", b"4"]


async def test_the_deadline_covers_reading_a_non_streaming_body(slow: SlowServer) -> None:
    adapter = _adapter(slow, 0.3)
    t0 = time.monotonic()
    with pytest.raises(ProviderTimeoutError, match="0.3 s request_deadline"):
        await transport.request(adapter, "GET", slow.url + "/slow-body", headers={})
    assert time.monotonic() - t0 < 5


async def test_a_zero_deadline_means_none(slow: SlowServer) -> None:
    adapter = _adapter(slow, 0)
    async with await transport.open_stream(adapter, "GET", slow.url + "/stream", headers={}) as resp:
        assert len([e async for e in transport.iter_sse(resp, adapter)]) == 5


def test_request_deadline_is_a_setting_with_a_default_of_300_s(synapse_env: Any) -> None:
    from synapse import settings

    assert settings.DEFAULTS["request_deadline"] == 300
    assert get("anthropic").configure(settings.load()).deadline == 300.0
    assert get("anthropic").configure({"request_deadline": "junk"}).deadline == 300.0
