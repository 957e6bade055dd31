"""What Synapse adds on the call path: synapse.achat vs. a bare aiohttp POST to the
same upstream, at concurrency 1 (added latency) and 64 (throughput).

The upstream is a minimal OpenAI-style server in a separate process on 127.0.0.1 that
answers every POST /v1/chat/completions with one fixed completion.

    .venv/bin/python bench/bench_callpath.py [requests]

Results are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000

BODY = json.dumps(
    {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11,
                  "prompt_tokens_details": {"cached_tokens": 0}},
    }
).encode()


def upstream(port: int) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def measure(call, n: int, concurrency: int) -> tuple[float, float, float]:
    """`n` calls, `concurrency` at a time: (calls/s, p50 ms, p99 ms)."""
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    wall = time.perf_counter() - t0
    latencies.sort()
    return n / wall, statistics.median(latencies) * 1000, latencies[int(len(latencies) * 0.99) - 1] * 1000


async def run(label: str, call, n: int, concurrency: int) -> None:
    for _ in range(50):  # warm up the pool
        await call()
    rate, p50, p99 = await measure(call, n, concurrency)
    print(f"{label:<34} c={concurrency:<3} {rate:>8.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")


async def start_upstream() -> tuple[multiprocessing.Process, str]:
    """The upstream in its own process, once it accepts connections: (process, base URL)."""
    port = free_port()
    proc = multiprocessing.Process(target=upstream, args=(port,), daemon=True)
    proc.start()
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}/v1"


async def main() -> None:
    proc, base = await start_upstream()

    os.environ["SYNAPSE_DATA_DIR"] = tempfile.mkdtemp()
    from synapse import achat, settings
    from synapse.providers.transport import close_session, session

    settings.update({"openai_key": "sk-bench-0000000000", "openai_base_url": base})
    payload = json.dumps({"model": "gpt-bench", "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = {"Authorization": "Bearer sk-bench-0000000000", "Content-Type": "application/json"}

    async def bare() -> None:
        async with session().post(base + "/chat/completions", data=payload, headers=headers) as r:
            json.loads(await r.read())

    async def through_synapse() -> None:
        await achat("gpt-bench", "hi")

    from synapse.usage import ledger

    recorder = ledger.record
    for c in (1, 64):
        n = N if c > 1 else N // 4
        await run("bare aiohttp POST", bare, n, c)
        ledger.record = recorder
        await run("synapse.achat", through_synapse, n, c)
        await asyncio.to_thread(ledger.flush)  # the writer's backlog must not bleed into the next run
        ledger.record = lambda rec: None
        await run("synapse.achat, ledger off", through_synapse, n, c)
    ledger.record = recorder
    await close_session()
    proc.terminate()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
