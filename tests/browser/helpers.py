"""Shared by the server tests and the browser tests: run the web app, talk to its API.

* `ServerThread(app)`: an in-process uvicorn on a free loopback port (for tests that
  swap the provider adapters for stubs).
* `ServeProcess(data_dir, ...)`: the real `synapse serve` in a subprocess.
* `ApiClient(base_url)`: a tiny cookie-keeping JSON client over http.client that
  sends the CSRF token on state-changing calls (like the page does).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """uvicorn serving `app` on 127.0.0.1 in a background thread, with `synapse serve`'s
    connection settings (`header_timeout`, `connections`, ... override them)."""

    def __init__(self, app: Any, **limits: Any) -> None:
        import uvicorn

        from synapse.server.run import uvicorn_settings

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(2048)
        self.port = self.sock.getsockname()[1]
        settings = {**uvicorn_settings(**limits), "log_config": None, "log_level": "warning", "access_log": False}
        self.server = uvicorn.Server(uvicorn.Config(app, **settings))
        self.thread = threading.Thread(target=self._run, daemon=True, name="synapse-test-server")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class Reply:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.text = body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.text[:300]}>"


class ApiClient:
    def __init__(self, base_url: str, *, origin: bool = True) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self.send_origin = origin

    def request(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
                csrf: bool = True, raw: bytes | None = None, timeout: float = 15) -> Reply:
        hdrs: dict[str, str] = {"Accept": "application/json"}
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if method not in ("GET", "HEAD"):
            if csrf:
                if not self.csrf:
                    self.refresh_csrf()
                hdrs["X-CSRF-Token"] = self.csrf
            if self.send_origin:
                hdrs["Origin"] = self.base_url
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        hdrs.update(headers or {})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
        finally:
            conn.close()
        for cookie in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return Reply(resp.status, resp.headers, payload)

    def refresh_csrf(self) -> str:
        r = self.request("GET", "/api/session")
        assert r.status == 200, r
        self.csrf = r.json()["csrf_token"]
        return self.csrf

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PUT", path, body, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)

    def wait_for(self, provider_id: str, timeout: float = 15) -> dict[str, Any]:
        """Poll /api/providers until the provider's check is no longer pending."""
        deadline = time.monotonic() + timeout
        while True:
            cards = {c["id"]: c for c in self.get("/api/providers").json()["providers"]}
            card = cards[provider_id]
            if card["status"]["state"] != "checking" or time.monotonic() > deadline:
                return card
            time.sleep(0.05)


class ServeProcess:
    """`python -m synapse.cli serve` in a subprocess; output captured to a file."""

    def __init__(self, data_dir: Path, *, host: str = "127.0.0.1", port: int | None = None,
                 env: dict[str, str] | None = None, log_path: Path | None = None,
                 preexec_fn: Any = None, workers: int = 1) -> None:
        self.preexec_fn = preexec_fn
        self.workers = workers
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port()
        self.log_path = log_path or self.data_dir.parent / f"serve-{self.port}.log"
        self.env = {**os.environ, "SYNAPSE_DATA_DIR": str(self.data_dir), "NO_PROXY": "127.0.0.1,localhost",
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "XAI_API_KEY",
                     "DEEPSEEK_API_KEY", "AWS_BEARER_TOKEN_BEDROCK", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                     "AWS_SESSION_TOKEN", "OLLAMA_BASE_URL", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL",
                     "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            if name not in (env or {}):
                self.env.pop(name, None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_in = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> "ServeProcess":
        self.log = open(self.log_path, "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "synapse.cli", "serve", "--host", self.host, "--port", str(self.port),
             *(["--workers", str(self.workers)] if self.workers > 1 else [])],
            stdout=self.log, stderr=subprocess.STDOUT, env=self.env, preexec_fn=self.preexec_fn,
        )
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"synapse serve exited with {self.proc.returncode}: {self.output()}")
            if "Synapse is running at" in self.output():
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"synapse serve did not start in {timeout} s: {self.output()}")
            time.sleep(0.02)
        self.started_in = time.monotonic() - t0
        return self

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "log", None):
            self.log.close()


class AsgiReply:
    """What an ASGI app sent: status, headers (lower-case names, repeats kept), body."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.header_list, self.body = status, headers, body
        self.headers = {k: v for k, v in headers}
        self.text = body.decode("utf-8", "replace")

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.header_list if k == name]

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<AsgiReply {self.status} {self.text[:300]}>"


async def asgi_request(app: Any, method: str, path: str, *, headers: dict[str, str] | None = None,
                       body: bytes | list[bytes] = b"", scheme: str = "http",
                       client: tuple[str, int] = ("127.0.0.1", 50000)) -> AsgiReply:
    """One request straight into an ASGI app (no server, no socket): for what a socket cannot
    fake, such as a TLS scheme. `body` as a list arrives in those chunks (chunked upload)."""
    path, _, query = path.partition("?")
    hdrs = {"host": "127.0.0.1:8000", **{k.lower(): v for k, v in (headers or {}).items()}}
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": scheme,
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in hdrs.items()],
        "client": client, "server": ("127.0.0.1", 8000), "state": {},
    }
    chunks = list(body) if isinstance(body, list) else [body]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        await asyncio.sleep(3600)  # like a client that stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return AsgiReply(start["status"], [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start["headers"]], out)
