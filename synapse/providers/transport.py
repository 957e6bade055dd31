"""Shared HTTP for every adapter: one pooled aiohttp session per event loop, retries
with backoff that honours Retry-After, a deadline per call, and the SSE / NDJSON readers.

Retries happen only before a response body is handed to the caller: a stream that
fails after its first event is reported, never silently replayed.

Two limits bound a call. `request_timeout` (ProviderConfig.timeout) is what one attempt
may wait: to connect, then for each read. `request_deadline` (ProviderConfig.deadline)
is what the whole call may take, every attempt and every backoff sleep included, so a
hung provider costs at most the deadline, not timeout x attempts. For a non-streaming
call the deadline covers the whole answer; for a stream it covers everything until the
response starts (status and headers received), after which each read has
`request_timeout` and a long answer is never cut off by the deadline.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import orjson
from yarl import URL

from ..errors import ConnectionFailedError, ProviderError, ProviderTimeoutError, UpstreamUnavailableError

if TYPE_CHECKING:
    from .catalog import ProviderConfig, ProviderSpec

__all__ = [
    "ErrorSource",
    "HttpResult",
    "SSEEvent",
    "Signer",
    "close_session",
    "dumps",
    "iter_chunks",
    "iter_lines",
    "iter_ndjson",
    "iter_sse",
    "loads",
    "mid_stream_error",
    "open_stream",
    "parse_retry_after",
    "request",
    "session",
]

dumps = orjson.dumps
loads = orjson.loads

#: Largest delay we will sleep for a Retry-After before giving up and reporting it.
MAX_RETRY_AFTER = 60.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0

_sessions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession]" = weakref.WeakKeyDictionary()
#: The last loop asked for (weakly) and its session: a server has one loop, and a
#: WeakKeyDictionary lookup makes a weak reference every time.
_last: tuple["weakref.ref[asyncio.AbstractEventLoop] | None", aiohttp.ClientSession | None] = (None, None)


def session() -> aiohttp.ClientSession:
    """The pooled client session of the running event loop, created on first use.

    It is closed when its loop closes (see `_close_with_loop`), so `asyncio.run(achat(...))`
    in a loop leaves no socket and no "Unclosed client session" behind."""
    global _last
    loop = asyncio.get_running_loop()
    ref, s = _last
    if ref is not None and ref() is loop and s is not None and not s.closed:
        return s
    s = _sessions.get(loop)
    if s is None or s.closed:
        connector = aiohttp.TCPConnector(limit=512, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
        # trust_env makes aiohttp look proxies up in a worker thread on every request:
        # only pay for that when a proxy is actually configured.
        s = aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=_proxy_configured())
        _sessions[loop] = s
        _close_with_loop(loop)
    _last = (weakref.ref(loop), s)
    return s


_HOOK = "_synapse_closes_sessions"


def _close_with_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Make `loop.close()` close this loop's session first.

    asyncio has no hook for "this loop is closing", so the loop instance's `close` is
    wrapped (as minrk/asyncio-atexit does). `asyncio.run`, pytest-asyncio, uvicorn and
    hand-made loops all end in `close()`, when the loop is stopped and can still run
    the session's own async close. The wrapper holds the loop weakly, calls any wrapper
    another library put there first, and is added once per loop. A loop that cannot
    take an attribute keeps its session until `synapse.aclose()`.
    """
    if getattr(loop, _HOOK, False):
        return
    earlier = vars(loop).get("close") if hasattr(loop, "__dict__") else None
    ref = weakref.ref(loop)

    def close() -> None:
        lp = ref()
        if lp is None:
            return
        _close_on_stopped(lp)
        if earlier is not None:
            earlier()
        else:
            type(lp).close(lp)

    try:
        setattr(loop, "close", close)
        setattr(loop, _HOOK, True)
    except (AttributeError, TypeError):
        pass


def _forget_last() -> None:
    global _last
    _last = (None, None)


#: Other per-loop clients closed with their loop (scale mode's Redis clients): loop -> closers.
_closers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[Callable[[], Awaitable[None]]]]" = (
    weakref.WeakKeyDictionary()
)


def close_with_loop(loop: asyncio.AbstractEventLoop, closer: Callable[[], Awaitable[None]]) -> None:
    """Run `await closer()` when `loop` closes, as this module does for its own session."""
    _closers.setdefault(loop, []).append(closer)
    _close_with_loop(loop)


def _close_on_stopped(loop: asyncio.AbstractEventLoop) -> None:
    _forget_last()
    s = _sessions.pop(loop, None)
    closers = _closers.pop(loop, [])
    if loop.is_closed() or loop.is_running():
        return
    for closer in closers:
        try:
            loop.run_until_complete(closer())
        except Exception:  # a client that cannot close cleanly: its sockets go with the process
            pass
    if s is None or s.closed:
        return
    try:
        loop.run_until_complete(_close(s))
    except Exception:  # a loop that cannot run any more: its sockets go with the process
        pass


async def _close(s: aiohttp.ClientSession) -> None:
    await s.close()
    await asyncio.sleep(0)  # let the transports run connection_lost: that closes the sockets


def _proxy_configured() -> bool:
    import os

    return any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"))


async def close_session() -> None:
    """Close the running loop's session now (`synapse.aclose()`); the next call opens a new one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    _forget_last()
    s = _sessions.pop(loop, None)
    if s is not None and not s.closed:
        await _close(s)


class ErrorSource(Protocol):
    """What the transport needs from an adapter to report failures in its provider's words."""

    spec: ProviderSpec
    config: ProviderConfig

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError: ...


@dataclass(slots=True)
class HttpResult:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return loads(self.body)


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: bytes

    def json(self) -> Any:
        return loads(self.data)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms`, then `retry-after` (seconds, float or HTTP date); None if absent."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if ra:
        try:
            return max(0.0, float(ra))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(ra)
            except (TypeError, ValueError):
                return None
            return max(0.0, when.timestamp() - time.time())
    return None


def _should_retry(err: ProviderError, headers: Mapping[str, str] | None) -> bool:
    if headers is not None:
        forced = headers.get("x-should-retry")
        if forced == "true":
            return True
        if forced == "false":
            return False
    return err.retryable


def _delay(attempt: int, err: ProviderError) -> float | None:
    """Seconds to wait before retry number `attempt` (0-based); None: do not retry."""
    if err.retry_after is not None:
        return err.retry_after if err.retry_after <= MAX_RETRY_AFTER else None
    backoff = min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt))
    return backoff * (0.5 + random.random() / 2)


_timeouts: dict[float, aiohttp.ClientTimeout] = {}


def _timeout(source: ErrorSource) -> aiohttp.ClientTimeout:
    """One attempt's limits (connect, then each read): made once per `request_timeout` value."""
    seconds = source.config.timeout
    t = _timeouts.get(seconds)
    if t is None:
        if len(_timeouts) > 64:
            _timeouts.clear()
        t = _timeouts[seconds] = aiohttp.ClientTimeout(total=None, connect=min(10.0, seconds), sock_read=seconds)
    return t


def _where(spec: ProviderSpec) -> str:
    return f" (check {spec.base_url_setting})" if spec.base_url_setting else ""


def _timed_out(source: ErrorSource, attempts: int, elapsed: float, deadline_hit: bool) -> ProviderTimeoutError:
    """No answer in time: the whole time waited and the attempts made, and which limit ran out."""
    spec, cfg = source.spec, source.config
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''} over {elapsed:.1f} s"
    if deadline_hit:
        message = (f"{spec.label} did not answer within the {cfg.deadline:g} s request_deadline ({tries}){_where(spec)}")
    elif attempts == 1:
        message = f"{spec.label} did not answer within {cfg.timeout:g} s (request_timeout){_where(spec)}"
    else:
        message = (f"{spec.label} did not answer: {tries}, each waiting up to {cfg.timeout:g} s "
                   f"(request_timeout){_where(spec)}")
    return ProviderTimeoutError(message, provider=spec.id)


def _gave_up(err: ProviderError, attempts: int, elapsed: float, why: str = "") -> ProviderError:
    """The error of the last attempt, saying how many were made and how long they took."""
    if attempts > 1 or why:
        err.message = f"{err.message} (gave up after {attempts} attempt{'s' if attempts != 1 else ''} " \
                      f"over {elapsed:.1f} s{why})"
        err.args = (err.message,)
    return err


def _connection_error(source: ErrorSource, url: str, exc: BaseException) -> ProviderError:
    spec = source.spec
    where = _where(spec)
    if isinstance(exc, asyncio.TimeoutError):
        return _timed_out(source, 1, 0.0, False)
    host = url.split("/")[2] if "://" in url else url
    reason = type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = f"connection failed: {exc.os_error.strerror or exc.os_error}" if exc.os_error else "connection failed"
        return ConnectionFailedError(f"cannot reach {spec.label} at {host}: {reason}{where}", provider=spec.id)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        reason = "the server closed the connection"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        reason = "the response was cut off"
    return UpstreamUnavailableError(f"cannot reach {spec.label} at {host}: {reason}{where}", provider=spec.id)


#: Builds the headers for one attempt (SigV4 signs each attempt afresh).
Signer = Callable[[str, Any, Mapping[str, str], "bytes | None"], Mapping[str, str]]


async def _send(
    source: ErrorSource,
    method: str,
    url: str | URL,
    headers: Mapping[str, str],
    body: bytes | None,
    params: Mapping[str, str] | None,
    sign: Signer | None,
    stream: bool,
) -> Any:
    """The one retry loop: send until a 2xx arrives, the error may not be retried, or the
    call's deadline would pass."""
    cfg = source.config
    clock = asyncio.get_running_loop().time  # the clock asyncio.timeout_at compares with
    started = clock()
    deadline = started + cfg.deadline if cfg.deadline > 0 else None
    attempt = 0
    while True:
        hdrs = sign(method, url, headers, body) if sign is not None else headers
        resp_headers: Mapping[str, str] | None = None
        try:
            async with asyncio.timeout_at(deadline):
                resp = await session().request(method, url, data=body, headers=hdrs, params=params, timeout=_timeout(source))
                if stream and resp.status < 300:
                    return resp
                try:
                    data = await resp.read()
                finally:
                    resp.release()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if isinstance(exc, asyncio.TimeoutError):
                now = clock()
                hit = deadline is not None and now >= deadline
                if hit or attempt >= cfg.max_retries:
                    raise _timed_out(source, attempt + 1, now - started, hit) from None
            err = _connection_error(source, str(url), exc)
        else:
            if resp.status < 300:
                return HttpResult(resp.status, resp.headers, data)
            err = source.error_from_response(resp.status, resp.headers, data)
            resp_headers = resp.headers
        if attempt >= cfg.max_retries or not _should_retry(err, resp_headers):
            raise _gave_up(err, attempt + 1, clock() - started)
        delay = _delay(attempt, err)
        if delay is None:
            raise _gave_up(err, attempt + 1, clock() - started)
        if deadline is not None and clock() + delay >= deadline:
            why = f"; another attempt would pass the {cfg.deadline:g} s request_deadline"
            raise _gave_up(err, attempt + 1, clock() - started, why)
        attempt += 1
        await asyncio.sleep(delay)


async def request(
    source: ErrorSource,
    method: str,
    url: str | URL,
    *,
    headers: Mapping[str, str],
    body: bytes | None = None,
    params: Mapping[str, str] | None = None,
    sign: Signer | None = None,
) -> HttpResult:
    """Send one request, retrying what may be retried; return a 2xx result or raise.

    `url` may be a `yarl.URL(..., encoded=True)` when the path must stay percent-encoded.
    """
    result: HttpResult = await _send(source, method, url, headers, body, params, sign, stream=False)
    return result


async def open_stream(
    source: ErrorSource,
    method: str,
    url: str | URL,
    *,
    headers: Mapping[str, str],
    body: bytes | None = None,
    params: Mapping[str, str] | None = None,
    sign: Signer | None = None,
) -> aiohttp.ClientResponse:
    """Send a streaming request; retry until the response starts with 2xx, then hand it over.

    The caller owns the returned response and must `release()` it (use `async with`).
    """
    resp: aiohttp.ClientResponse = await _send(source, method, url, headers, body, params, sign, stream=True)
    return resp


def mid_stream_error(source: ErrorSource, exc: BaseException) -> ProviderError:
    """A failure after the response started: reported, never retried."""
    if isinstance(exc, asyncio.TimeoutError):
        return ProviderTimeoutError(
            f"{source.spec.label} sent nothing for {source.config.timeout:g} s (mid-stream)", provider=source.spec.id
        )
    return UpstreamUnavailableError(
        f"the connection to {source.spec.label} broke after the reply started; try again (mid-stream)",
        provider=source.spec.id,
    )


async def iter_chunks(resp: aiohttp.ClientResponse, source: ErrorSource | None = None) -> AsyncIterator[bytes]:
    """Raw body chunks as they arrive; a broken connection becomes a typed mid-stream error."""
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        if source is None:
            raise
        raise mid_stream_error(source, exc) from None


async def iter_lines(resp: aiohttp.ClientResponse, source: ErrorSource | None = None) -> AsyncIterator[bytes]:
    """Lines of a response body (LF or CRLF), however the bytes were split across reads."""
    buf = b""
    async for chunk in iter_chunks(resp, source):
        buf += chunk
        if b"\n" not in chunk:
            continue
        *lines, buf = buf.split(b"\n")
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if buf:
        yield buf[:-1] if buf.endswith(b"\r") else buf


async def iter_sse(resp: aiohttp.ClientResponse, source: ErrorSource | None = None) -> AsyncIterator[SSEEvent]:
    """Server-sent events: comments skipped, multi-line data joined with LF.

    Lines that are not SSE fields (Gemini sends a raw JSON error object mid-stream)
    are collected and yielded as one event named "__raw__".
    """
    event: str | None = None
    data: list[bytes] = []
    raw: list[bytes] = []
    async for line in iter_lines(resp, source):
        if not line:
            if data:
                yield SSEEvent(event, b"\n".join(data))
            if raw:
                yield SSEEvent("__raw__", b"\n".join(raw))
            event, data, raw = None, [], []
            continue
        if line[:1] == b":":
            continue
        name, colon, value = line.partition(b":")
        if name == b"data":
            data.append(value[1:] if value[:1] == b" " else value)
        elif name == b"event":
            event = (value[1:] if value[:1] == b" " else value).decode()
        elif name in (b"id", b"retry"):
            continue
        else:
            raw.append(line)
    if data:
        yield SSEEvent(event, b"\n".join(data))
    if raw:
        yield SSEEvent("__raw__", b"\n".join(raw))


async def iter_ndjson(resp: aiohttp.ClientResponse, source: ErrorSource) -> AsyncIterator[Any]:
    """One JSON value per non-empty line (Ollama)."""
    async for line in iter_lines(resp, source):
        if line.strip():
            try:
                yield loads(line)
            except orjson.JSONDecodeError:
                raise UpstreamUnavailableError(
                    f"{source.spec.label} sent a line that is not JSON in its stream", provider=source.spec.id
                ) from None

