"""Idle and slow connections cannot take the server down (uvicorn with `uvicorn_settings()`).

A probe opened 1,100 idle sockets and the server ran out of file descriptors: uvicorn
closes an idle connection only after a response, so one that never sends a request head
stayed open for ever. Here: sockets that send nothing, or a head a byte at a time, are
closed after the header timeout; past the connection cap a new socket is answered 503 at
once; a real request still gets through; and `synapse serve` with a low file limit
survives more idle sockets than that limit allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse.server.app import create_app
from synapse.server.run import HEADER_TIMEOUT, KEEP_ALIVE, max_connections, uvicorn_settings
from tests.browser.helpers import ApiClient, ServeProcess, ServerThread

TIMEOUT = 0.6
CAP = 40


async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers /slow after longer than the header timeout, anything else at once."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(TIMEOUT * 2.5)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def server() -> Iterator[ServerThread]:
    srv = ServerThread(slow_app, header_timeout=TIMEOUT, connections=CAP, keep_alive=1, max_head=8 * 1024).start()
    yield srv
    srv.stop()


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close = reset, no TIME_WAIT
    return s


def closed_by_server(s: socket.socket, within: float) -> tuple[bool, bytes]:
    """(True, what it sent first) when the server closed `s` within `within` seconds."""
    s.settimeout(within)
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return True, got
            got += chunk
    except (TimeoutError, socket.timeout):
        return False, got
    except ConnectionResetError:
        return True, got


def get(port: int, path: str = "/") -> bytes:
    s = connect(port)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        s.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        return data
    finally:
        s.close()


def test_idle_sockets_are_closed_after_the_header_timeout(server: ServerThread) -> None:
    idle = [connect(server.port) for _ in range(30)]
    try:
        t0 = time.monotonic()
        assert get(server.port).startswith(b"HTTP/1.1 200")  # the server answers meanwhile
        results = [closed_by_server(s, TIMEOUT * 4) for s in idle]
        assert all(closed for closed, _ in results), "an idle socket was left open"
        assert time.monotonic() - t0 < TIMEOUT * 4
        assert all(sent == b"" for _, sent in results)  # closed quietly, like a keep-alive timeout
    finally:
        for s in idle:
            s.close()


def test_a_head_sent_a_byte_at_a_time_is_cut_off(server: ServerThread) -> None:
    s = connect(server.port)
    try:
        t0 = time.monotonic()
        closed = False
        for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - t0 > TIMEOUT * 4:
                break
        if not closed:
            closed, _ = closed_by_server(s, TIMEOUT * 2)
        assert closed and time.monotonic() - t0 < TIMEOUT * 4
    finally:
        s.close()


def test_past_the_cap_a_new_connection_gets_a_503_at_once(server: ServerThread) -> None:
    idle = [connect(server.port) for _ in range(CAP)]
    try:
        time.sleep(0.1)
        t0 = time.monotonic()
        extra = connect(server.port)
        closed, sent = closed_by_server(extra, 2)
        extra.close()
        assert closed and sent.startswith(b"HTTP/1.1 503") and b"too many open connections" in sent
        assert time.monotonic() - t0 < 1
        # the idle ones time out, and the server takes requests again
        for s in idle:
            closed_by_server(s, TIMEOUT * 4)
        assert get(server.port).startswith(b"HTTP/1.1 200")
    finally:
        for s in idle:
            s.close()


def test_a_slow_answer_is_not_cut_by_the_header_timeout(server: ServerThread) -> None:
    t0 = time.monotonic()
    assert get(server.port, "/slow").startswith(b"HTTP/1.1 200")
    assert time.monotonic() - t0 >= TIMEOUT * 2


def test_keep_alive_then_idle_is_closed(server: ServerThread) -> None:
    s = connect(server.port)
    try:
        for _ in range(2):  # two requests on one connection, then silence
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            s.settimeout(5)
            data = b""
            while not data.endswith(b"ok"):
                data += s.recv(4096)
        closed, _ = closed_by_server(s, 3)
        assert closed
    finally:
        s.close()


def test_an_oversized_head_gets_a_431(server: ServerThread) -> None:
    s = connect(server.port)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(40):
                s.sendall(b"X-Big: " + b"b" * 1000 + b"\r\n")
        closed, sent = closed_by_server(s, 3)
        assert closed and sent.startswith(b"HTTP/1.1 431")
    finally:
        s.close()


def test_the_settings_synapse_serve_uses() -> None:
    settings = uvicorn_settings()
    assert settings["proxy_headers"] is False  # X-Forwarded-* only from trusted_proxies, in the app
    assert settings["timeout_keep_alive"] == KEEP_ALIVE and HEADER_TIMEOUT == 10.0
    assert settings["limit_concurrency"] == max_connections() + 1
    assert settings["http"].func.__name__ == "GuardedHttpToolsProtocol"
    import pickle  # a worker process gets the config pickled (uvicorn --workers spawns)

    again = pickle.loads(pickle.dumps(settings["http"]))
    assert again.func is settings["http"].func and again.keywords == settings["http"].keywords
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert max_connections() <= max(32, soft - 256)


def test_synapse_serve_outlives_more_idle_sockets_than_its_file_limit(synapse_env: Path, tmp_path: Path) -> None:
    """The probe's attack on the real command, scaled to a file limit of 512: 700 idle sockets."""
    synapse_env.mkdir(parents=True, exist_ok=True)

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    server = ServeProcess(synapse_env, log_path=tmp_path / "serve.log", preexec_fn=low_limit).start()
    sockets: list[socket.socket] = []
    try:
        for _ in range(700):
            try:
                sockets.append(connect(server.port))
            except OSError:
                break
        assert len(sockets) == 700
        time.sleep(0.3)
        refused = sum(1 for s in sockets[-100:] if closed_by_server(s, 0.5)[1].startswith(b"HTTP/1.1 503"))
        assert refused == 100  # past the cap of 512 - 256: answered 503 and closed at once
        r = get(server.port, "/api/session")
        assert r.startswith(b"HTTP/1.1 503") or r.startswith(b"HTTP/1.1 200")  # answered, never hung
        for s in sockets:
            s.close()
        sockets.clear()
        time.sleep(0.2)
        assert ApiClient(server.url).get("/api/session").status == 200
        assert "Too many open files" not in server.output()
        assert server.proc is not None and server.proc.poll() is None
    finally:
        for s in sockets:
            s.close()
        server.stop()
    assert os.path.exists(tmp_path / "serve.log")


def test_a_busy_keep_alive_connection_stays_open_and_is_closed_once_idle(server: ServerThread) -> None:
    """One header timer per connection, moved forward by each response: requests for
    longer than the timeout keep the connection; silence after them closes it."""
    s = connect(server.port)
    try:
        s.settimeout(5)
        t0 = time.monotonic()
        answered = 0
        while time.monotonic() - t0 < TIMEOUT * 3:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while not data.endswith(b"ok"):
                chunk = s.recv(4096)
                assert chunk, f"closed after {answered} requests in {time.monotonic() - t0:.2f} s while busy"
                data += chunk
            answered += 1
            time.sleep(TIMEOUT / 6)
        t1 = time.monotonic()
        closed, _ = closed_by_server(s, TIMEOUT * 4)
        assert closed and TIMEOUT * 0.8 <= time.monotonic() - t1 < TIMEOUT * 4
    finally:
        s.close()


def test_gateway_requests_make_no_access_log_record(synapse_env: Path) -> None:
    """/v1 calls are recorded by the usage ledger; the access log keeps the rest."""
    import logging

    import uvicorn

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    access = logging.getLogger("uvicorn.access")
    saved = (access.handlers[:], access.level, access.propagate)
    srv = ServerThread(slow_app)  # (its config empties the access logger: the handler goes on after)
    srv.server = uvicorn.Server(uvicorn.Config(slow_app, **{**uvicorn_settings(), "log_config": None, "access_log": True}))
    access.handlers[:] = [Keep()]
    access.setLevel(logging.INFO)
    access.propagate = False
    srv.start()
    try:
        assert get(srv.port, "/v1/models").startswith(b"HTTP/1.1 200")
        assert get(srv.port, "/settings/models").startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 5
        while not records and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        srv.stop()
        access.handlers[:], _, access.propagate = saved
        access.setLevel(saved[1])
    assert len(records) == 1 and "/settings/models" in records[0]


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def test_a_response_head_and_body_sent_in_one_step_leave_in_one_write() -> None:
    from synapse.server.connections import _HeadHolder

    raw = _Recorder()
    out = _HeadHolder(raw)
    out.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    out.write(b"ok")
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    await asyncio.sleep(0)
    assert len(raw.writes) == 1  # nothing sent twice


async def test_a_stream_head_goes_out_at_the_end_of_the_step_and_events_as_they_come() -> None:
    from synapse.server.connections import _HeadHolder

    raw = _Recorder()
    out = _HeadHolder(raw)
    out.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    assert raw.writes == []
    await asyncio.sleep(0)
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]  # not held for the first event
    out.write(b"5\r\ndata:\r\n")
    out.write(b"0\r\n\r\n")
    assert raw.writes[1:] == [b"5\r\ndata:\r\n", b"0\r\n\r\n"]


async def test_close_sends_a_held_head_first() -> None:
    from synapse.server.connections import _HeadHolder

    raw = _Recorder()
    out = _HeadHolder(raw)
    out.write(b"HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\n\r\n")
    out.close()
    assert raw.writes == [b"HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\n\r\n"] and raw.closed
    await asyncio.sleep(0)
    assert len(raw.writes) == 1 and out.is_closing()
