"""The web app under abuse, this checkout against a baseline checkout, in the same run.

    git archive main | (mkdir -p /tmp/synapse-base && tar -x -C /tmp/synapse-base)
    .venv/bin/python bench/bench_web.py --baseline /tmp/synapse-base

Each side runs the real `synapse serve` (its source first on PYTHONPATH, this venv's
packages) in its own process, with a file limit of 1,024 as on a default Linux account;
this process is the client. Four measurements, each on a fresh server:

1. six parallel 50 MB POSTs to /api/login: the server's peak memory (VmHWM) over its start;
2. 20,000 requests without a cookie (after 5,000 to warm up): the server's memory growth;
3. GET /api/settings/model with a cookie, 8 at a time for 4 s: requests/s and p50;
4. 1,100 idle sockets, then one GET: answered within 2 s or not; and again 11 s later
   (past the 10 s header timeout), the idle sockets still open on the client's side.

Results are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


class Server:
    def __init__(self, source: Path) -> None:
        self.source = source
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = tempfile.mkdtemp(prefix="synapse-bench-web-")
        env = {**os.environ, "SYNAPSE_DATA_DIR": data, "PYTHONPATH": str(source)}

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "synapse.cli", "serve", "--port", str(self.port)], env=env, cwd=source,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=limit,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("synapse serve did not start") from None
                time.sleep(0.05)
        time.sleep(0.3)
        self.start_rss = memory_kib(self.proc.pid, "VmRSS")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def csrf(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url + "/api/session") as r:
        return str((await r.json())["csrf_token"])


async def big_logins(server: Server) -> dict[str, Any]:
    body = b'{"username": "admin", "password": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    statuses: list[int] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        token = await csrf(http, server.url)
        headers = {"X-CSRF-Token": token, "Content-Type": "application/json", "Origin": server.url}

        async def one() -> None:
            try:
                async with http.post(server.url + "/api/login", data=body, headers=headers) as r:
                    statuses.append(r.status)
                    await r.read()
            except aiohttp.ClientError:
                statuses.append(0)  # the server closed the connection mid-upload (after its 413)

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(6)))
        took = time.perf_counter() - t0
    peak = memory_kib(server.proc.pid, "VmHWM")
    return {"peak_over_start_mb": (peak - server.start_rss) / 1024, "seconds": took, "statuses": sorted(statuses)}


async def cookieless(server: Server, n: int = 20_000, warm_up: int = 5_000) -> dict[str, Any]:
    conn = aiohttp.TCPConnector(limit=8)
    async with aiohttp.ClientSession(connector=conn, cookie_jar=aiohttp.DummyCookieJar()) as http:
        sem = asyncio.Semaphore(8)

        async def one() -> None:
            async with sem, http.get(server.url + "/api/session") as r:
                await r.read()

        await asyncio.gather(*(one() for _ in range(warm_up)))
        await asyncio.sleep(0.2)
        before = memory_kib(server.proc.pid, "VmRSS")
        await asyncio.gather(*(one() for _ in range(n)))
    await asyncio.sleep(0.2)
    return {"rss_growth_mb": (memory_kib(server.proc.pid, "VmRSS") - before) / 1024}


async def throughput(server: Server, seconds: float = 4.0, concurrency: int = 8) -> dict[str, Any]:
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await csrf(http, server.url)  # one cookie for the run
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                async with http.get(server.url + "/api/settings/model") as r:
                    await r.read()
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        took = time.perf_counter() - t0
    return {"rps": len(latencies) / took, "p50_ms": statistics.median(latencies) * 1000}


def ask(port: int) -> tuple[str, float]:
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = s.recv(100).split(b"\r\n")[0].decode() or "closed without an answer"
    except OSError as exc:
        answer = f"no answer ({type(exc).__name__})"
    return answer, time.perf_counter() - t0


def idle_sockets(server: Server, n: int = 1100) -> dict[str, Any]:
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=2))
        except OSError:
            break
    time.sleep(0.5)
    answer, took = ask(server.port)
    time.sleep(11)
    later, _ = ask(server.port)
    for s in socks:
        s.close()
    return {"opened": len(socks), "answer": answer, "seconds": took, "later": later}


def measure(source: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, run in [("big_logins", big_logins), ("cookieless", cookieless), ("throughput", throughput)]:
        server = Server(source)
        try:
            out[name] = asyncio.run(run(server))  # type: ignore[operator]
        finally:
            server.stop()
    server = Server(source)
    try:
        out["idle"] = idle_sockets(server)
    finally:
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout of the code to compare with")
    args = parser.parse_args()
    results = {"baseline": measure(args.baseline.resolve()), "this": measure(ROOT)}
    b, t = results["baseline"], results["this"]
    print(f"{'':44} {'baseline':>22} {'this':>22}")
    print(f"{'6 x 50 MB POST /api/login: peak MB':44} {b['big_logins']['peak_over_start_mb']:>22.1f} "
          f"{t['big_logins']['peak_over_start_mb']:>22.1f}")
    print(f"{'   seconds, statuses':44} {b['big_logins']['seconds']:>10.2f} {str(b['big_logins']['statuses']):>11} "
          f"{t['big_logins']['seconds']:>10.2f} {str(t['big_logins']['statuses']):>11}")
    print(f"{'20,000 cookieless requests: MB':44} {b['cookieless']['rss_growth_mb']:>22.1f} "
          f"{t['cookieless']['rss_growth_mb']:>22.1f}")
    print(f"{'GET /api/settings/model c=8: req/s':44} {b['throughput']['rps']:>22.0f} {t['throughput']['rps']:>22.0f}")
    print(f"{'   p50 ms':44} {b['throughput']['p50_ms']:>22.2f} {t['throughput']['p50_ms']:>22.2f}")
    print(f"{'1,100 idle sockets, then a GET':44} {b['idle']['answer'][:22]:>22} {t['idle']['answer'][:22]:>22}")
    print(f"{'   seconds to the answer':44} {b['idle']['seconds']:>22.2f} {t['idle']['seconds']:>22.2f}")
    print(f"{'   a GET 11 s later':44} {b['idle']['later'][:22]:>22} {t['idle']['later'][:22]:>22}")


if __name__ == "__main__":
    main()
