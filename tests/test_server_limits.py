"""Request body limits, over real sockets and straight into the ASGI middleware.

A body over the limit of its path prefix is refused with 413 before it is read: a declared
Content-Length at once (the test sends the head only, so the answer cannot have waited for
the body), a chunked body as soon as it crosses the limit (the app behind saw at most the
limit plus one chunk).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse.server.app import BODY_LIMITS, create_app
from synapse.server.auth import UserStore
from synapse.server.limits import KiB, MiB, BodyLimit
from tests.browser.helpers import ApiClient, ServerThread, asgi_request


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    users = UserStore(tmp_path_factory.mktemp("users") / "users.json")
    srv = ServerThread(create_app("127.0.0.1", users=users)).start()
    yield srv
    srv.stop()


def raw(port: int, data: bytes, *, timeout: float = 5.0) -> tuple[bytes, socket.socket]:
    """Send `data` and read what comes back until the server closes or `timeout`."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except (TimeoutError, socket.timeout):
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
        if b"\r\n\r\n" in got and _complete(got):
            break
    return got, s


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def parse(reply: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(body) if body else None


def csrf_headers(server: ServerThread) -> str:
    api = ApiClient(server.url)
    api.refresh_csrf()
    cookie = "; ".join(f"{k}={v}" for k, v in api.cookies.items())
    return f"Cookie: {cookie}\r\nX-CSRF-Token: {api.csrf}\r\nOrigin: {server.url}\r\n"


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(server: ServerThread,
                                                                              synapse_env: Path) -> None:
    head = (f"PUT /api/settings HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n{csrf_headers(server)}"
            f"Content-Type: application/json\r\nContent-Length: {50 * MiB}\r\n\r\n").encode()
    t0 = time.monotonic()
    reply, s = raw(server.port, head)  # the head only: not one byte of the 50 MB body
    s.close()
    status, headers, body = parse(reply)
    assert status == 413 and time.monotonic() - t0 < 2
    assert body == {"detail": "the request body is too large: at most 1 MiB here", "limit": MiB}
    assert headers["connection"] == "close"
    assert not (synapse_env / "settings.json").exists()


def test_a_chunked_body_is_cut_off_at_the_limit(server: ServerThread, synapse_env: Path) -> None:
    head = (f"PUT /api/settings HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n{csrf_headers(server)}"
            f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(head)
    chunk = b"x" * (64 * KiB)
    sent = 0
    reply = b""
    s.settimeout(0.05)
    try:
        while sent < 50 * MiB and b"\r\n\r\n" not in reply:
            s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
            try:
                reply += s.recv(65536)
            except (TimeoutError, socket.timeout):
                pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.settimeout(5)
    try:
        while b"\r\n\r\n" not in reply or not _complete(reply):
            more = s.recv(65536)
            if not more:
                break
            reply += more
    except (ConnectionResetError, TimeoutError, socket.timeout):
        pass
    s.close()
    status, _, body = parse(reply)
    assert status == 413 and body["limit"] == MiB
    assert sent < 50 * MiB  # the server answered (and closed) long before the upload was done
    assert not (synapse_env / "settings.json").exists()


def test_a_login_is_allowed_a_few_kilobytes(server: ServerThread) -> None:
    api = ApiClient(server.url)
    r = api.post("/api/login", {"username": "admin", "password": "x" * (5 * KiB)})
    assert r.status == 413 and r.json()["detail"] == "the request body is too large: at most 4 KiB here"
    r = api.post("/api/login", {"username": "admin", "password": "a wrong password"})
    assert r.status == 401  # a normal login body passes


def test_a_body_under_the_limit_is_read(server: ServerThread, synapse_env: Path) -> None:
    api = ApiClient(server.url)
    r = api.put("/api/settings", {"embedding_model": "m" * (900 * KiB)})
    assert r.status == 400 and r.json()["field"] == "embedding_model"  # read and judged by the route


def test_a_content_length_that_is_not_a_number_is_a_400(server: ServerThread) -> None:
    reply, s = raw(server.port, f"PUT /api/settings HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                                f"Content-Length: lots\r\n\r\n".encode())
    s.close()
    assert reply.startswith(b"HTTP/1.1 400")  # refused by the HTTP parser before it reaches the app


# --- the middleware itself ------------------------------------------------------------------------


class Recorder:
    """An ASGI app that reads the whole body, then answers 200 with its length."""

    def __init__(self) -> None:
        self.received = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        more = True
        while more:
            message = await receive()
            self.received += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = str(self.received).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def test_the_longest_prefix_wins_and_a_gateway_gets_its_own_limit() -> None:
    limits = BodyLimit(Recorder(), {**BODY_LIMITS, "/v1/": 20 * MiB})
    assert limits.limit_for("/v1/chat/completions") == 20 * MiB
    assert limits.limit_for("/api/providers/openai") == MiB
    assert limits.limit_for("/api/login") == 4 * KiB
    assert limits.limit_for("/settings/models") == 64 * KiB
    assert BodyLimit(Recorder(), {"/api/": MiB}).limit_for("/other") is None
    with pytest.raises(ValueError, match="path prefix starting with /"):
        BodyLimit(Recorder(), {"api": MiB})


async def test_a_20_mib_gateway_body_passes_where_the_api_would_refuse_it() -> None:
    app = Recorder()
    limited = BodyLimit(app, {"/api/": MiB, "/v1/": 20 * MiB})
    body = [b"x" * MiB] * 5
    r = await asgi_request(limited, "POST", "/v1/messages", body=list(body))
    assert r.status == 200 and r.text == str(5 * MiB)
    app.received = 0
    r = await asgi_request(limited, "POST", "/api/anything", body=list(body))
    assert r.status == 413 and r.json()["limit"] == MiB
    assert app.received <= 2 * MiB  # counted while streaming: the app saw the limit plus one chunk, at most


async def test_what_the_app_sent_after_a_failed_read_is_replaced_by_the_413() -> None:
    """FastAPI turns a failed body read into its own 400; the client must see the 413 only."""
    r = await asgi_request(create_app("127.0.0.1"), "PUT", "/api/settings", body=[b"{" + b" " * (600 * KiB)] * 2,
                           headers={"origin": "http://127.0.0.1:8000"})
    assert r.status == 403  # no CSRF token: refused before the body is read at all
    app = create_app("127.0.0.1")
    first = await asgi_request(app, "GET", "/api/session")
    cookie = first.all("set-cookie")[0].split(";")[0]
    r = await asgi_request(app, "PUT", "/api/settings", body=[b"{" + b" " * (600 * KiB)] * 2,
                           headers={"cookie": cookie, "x-csrf-token": first.json()["csrf_token"]})
    assert r.status == 413 and r.json()["detail"].startswith("the request body is too large")
    assert len([1 for k, _ in r.header_list if k == "content-type"]) == 1


def test_a_chat_turn_may_carry_images_but_only_with_a_key(tmp_path: Path, synapse_env: Path) -> None:
    """/api/v1 takes 32 MiB (images); off loopback a program without a valid key is refused
    from the head, before any of that body is read."""
    assert BodyLimit(Recorder(), BODY_LIMITS).limit_for("/api/v1/chat") == 32 * MiB
    srv = ServerThread(create_app("0.0.0.0", users=UserStore(tmp_path / "users.json"), trusted_proxies="")).start()
    try:
        for auth in ("", "Authorization: Bearer not-a-key\r\n"):
            head = (f"POST /api/v1/chat HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n{auth}"
                    f"Content-Type: application/json\r\nContent-Length: {20 * MiB}\r\n\r\n").encode()
            reply, s = raw(srv.port, head)
            s.close()
            status, _, body = parse(reply)
            assert status == 401 and "API key" in body["detail"], body
    finally:
        srv.stop()
