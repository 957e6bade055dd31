"""Synapse's own CPU time per /v1 request, without the network: the gateway's ASGI app
called in a loop, with the provider call answered at once by a canned reply.

    .venv/bin/python bench/bench_gateway_cpu.py [--requests 10000] [--baseline DIR]

What it measures is what Synapse adds to a request that uvicorn, aiohttp and the
upstream do not: the key check, settings, routing, the relay or the canonical
decode/encode, usage read off the reply, the ledger record (a queue put). It is CPU
time of the serving thread (best of 5 runs of N requests), so it moves little with what
else the machine runs, unlike requests/s; bench_gateway.py measures the whole server.
The usage writer's own CPU per record is in bench_usage.py.

`--baseline DIR` runs the same in a second process from another source tree (e.g. `git
archive main | tar -x -C DIR`), alternately, and prints the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_gateway import ANTHROPIC_REQUEST, CHAT, MESSAGE, OPENAI_REQUEST, setup_synapse  # noqa: E402

SHAPES = {
    "relay-openai": ("/v1/chat/completions", OPENAI_REQUEST, {}),
    "relay-anthropic": ("/v1/messages", ANTHROPIC_REQUEST, {"anthropic-version": "2023-06-01"}),
    "canonical": ("/v1/chat/completions", {**OPENAI_REQUEST, "model": "claude-sonnet-4-5"}, {}),
}


def measure(n: int, shape: str) -> list[float]:
    """µs of this thread's CPU per request, for 5 runs of `n` requests."""
    data = Path(tempfile.mkdtemp(prefix="synapse-bench-")) / "data"
    key = setup_synapse(data, 9)  # the upstream port is never used: nothing is sent
    os.environ["SYNAPSE_DATA_DIR"] = str(data)
    from multidict import CIMultiDict

    from synapse.gateway.app import Gateway
    from synapse.providers import transport
    from synapse.usage.ledger import ledger

    async def canned(source: Any, method: str, url: Any, *, headers: Any, body: bytes | None = None,
                     params: Any = None, sign: Any = None) -> Any:
        reply = MESSAGE if "messages" in str(url) else CHAT
        return transport.HttpResult(200, CIMultiDict({"content-type": "application/json"}), reply)

    transport.request = canned  # type: ignore[assignment]
    app = Gateway(loopback=True)
    path, body, extra = SHAPES[shape]
    raw = json.dumps(body).encode()
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"content-type", b"application/json"),
               (b"content-length", str(len(raw)).encode()), (b"authorization", f"Bearer {key}".encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    statuses: dict[int, int] = {}

    async def one() -> None:
        scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "query_string": b"",
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
        message = {"type": "http.request", "body": raw, "more_body": False}

        async def receive() -> dict[str, Any]:
            return message

        async def send(m: dict[str, Any]) -> None:
            if m["type"] == "http.response.start":
                statuses[m["status"]] = statuses.get(m["status"], 0) + 1

        await app(scope, receive, send)

    async def run() -> list[float]:
        for _ in range(2000):  # warm: imports, key table, routes, adapter, the writer thread
            await one()
        await asyncio.to_thread(ledger.flush, 60)
        out = []
        for _ in range(5):
            c0 = time.thread_time()
            for _ in range(n):
                await one()
            out.append((time.thread_time() - c0) / n * 1e6)
            await asyncio.to_thread(ledger.flush, 60)  # the writer's work is not this thread's
        assert set(statuses) == {200}, statuses
        return out

    import uvloop

    return uvloop.run(run())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--baseline", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child process: one shape, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.requests, args.one)))
        return
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.baseline is not None:
        trees.insert(0, ("baseline", args.baseline.resolve()))
    print(f"python {sys.version.split()[0]}; load average {os.getloadavg()[0]:.1f}; "
          f"{args.requests:,} requests x 5 per run, {args.rounds} round(s), trees alternated")
    best: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for shape in SHAPES:
            for name, tree in trees:
                env = dict(os.environ)
                if tree is not None:
                    env["PYTHONPATH"] = str(tree)
                out = subprocess.run([sys.executable, __file__, "--requests", str(args.requests), "--one", shape],
                                     env=env, capture_output=True, text=True, check=True).stdout
                best.setdefault((name, shape), []).append(min(json.loads(out.strip().splitlines()[-1])))
    for shape in SHAPES:
        line = f"  {shape:<16}"
        for name, _ in trees:
            line += f"  {name}: {statistics.median(best[(name, shape)]):6.1f} µs/request"
        if args.baseline is not None:
            line += f"   ratio {statistics.median(best[('this tree', shape)]) / statistics.median(best[('baseline', shape)]):.2f}x"
        print(line)
    print(f"  load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
