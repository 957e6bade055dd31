"""What sharing logins and login attempts through the database costs a request.

    .venv/bin/python bench/bench_websessions.py 3000

The whole web app (create_app, security layer included) is driven in process through
ASGI, without sockets, so the numbers are the server's own work. Each line is measured
in the same run as its baseline, the in-memory stores every process had of its own
before (`auth.SessionStore`, `throttle.LoginThrottle`):

1. GET /api/session with a logged-in cookie: memory vs the database store with its 1 s
   cache (a page view) vs the database store read every time (cache off: the first
   request of a session in a second, per process);
2. the same for a visitor without a login (its cookie's id is looked up, found nowhere);
3. a login attempt reserved: memory vs the `login_attempts` transaction.

On SQLite in a temporary data folder. Results are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def call(app: Any, path: str, cookie: str) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"cookie", f"synapse_session={cookie}".encode())],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def per_request_us(app: Any, cookie: str, n: int) -> float:
    for _ in range(200):  # warm up: imports, the engine, the first rows
        assert await call(app, "/api/session", cookie) == 200
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            await call(app, "/api/session", cookie)
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(runs)


async def attempt_us(throttle: Any, n: int) -> float:
    runs = []
    for r in range(5):
        t0 = time.perf_counter()
        for i in range(n):
            await throttle.aattempt(f"10.{r}.{i // 256}.{i % 256}", f"user{i}")
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(runs)


async def main(n: int) -> None:
    os.environ["SYNAPSE_DATA_DIR"] = tempfile.mkdtemp(prefix="synapse-bench-websessions-")
    from synapse.server.app import create_app
    from synapse.server.auth import SessionStore
    from synapse.server.stored_sessions import DatabaseSessionStore
    from synapse.server.stored_throttle import DatabaseLoginThrottle
    from synapse.server.throttle import LoginThrottle, Window

    key = b"k" * 32
    stores: dict[str, SessionStore] = {
        "memory (before)": SessionStore(secret=key),
        "database, 1 s cache": DatabaseSessionStore(secret=key),
        "database, read every time": DatabaseSessionStore(secret=key, cache_seconds=0),
    }
    rows = []
    for who in ("logged in", "visitor"):
        for name, store in stores.items():
            app = create_app("127.0.0.1", sessions=store, trusted_proxies="")
            cookie = (await store.alogin("admin")).id if who == "logged in" else store.anonymous().id
            rows.append((who, name, await per_request_us(app, cookie, n)))
    wide = Window(10**9, 300)
    memory = await attempt_us(LoginThrottle(wide, wide, wide), n // 10)
    database = await attempt_us(DatabaseLoginThrottle(secret=key, pair=wide, user=wide, client=wide), n // 10)

    print(f"GET /api/session through the whole app, median of 5 x {n} (µs per request)")
    print("| cookie | session store | µs | ratio to memory |")
    print("|---|---|---:|---:|")
    for who, name, us in rows:
        base = next(u for w, s, u in rows if w == who and s == "memory (before)")
        print(f"| {who} | {name} | {us:.0f} | {us / base:.2f} |")
    print(f"\nlogin attempt reserved, median of 5 x {n // 10}: memory {memory:.1f} µs, "
          f"database {database:.0f} µs ({database / memory:.0f}x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=3000, help="requests per run")
    asyncio.run(main(parser.parse_args().n))
