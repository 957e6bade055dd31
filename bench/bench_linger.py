"""What the usage ledger's linger buys: latency added to calls and the writer's CPU, with
the writer writing at once (linger 0) and lingering up to 200 ms to gather a batch, at
concurrency 1 and 64, in the same run, against a baseline with the ledger off.

The price of the linger is what `kill -9` can lose: the records of the last linger
window (at most rate x linger). Printed as well, from the measured rate.

    .venv/bin/python bench/bench_linger.py [requests]

Results are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
import time

from bench_callpath import measure, start_upstream

N = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(thread: threading.Thread | None) -> float:
    """CPU seconds (user + system) a thread has used, from /proc."""
    if thread is None or thread.native_id is None:
        return 0.0
    with open(f"/proc/self/task/{thread.native_id}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def main() -> None:
    proc, base = await start_upstream()

    os.environ["SYNAPSE_DATA_DIR"] = tempfile.mkdtemp(prefix="synapse-bench-")
    from synapse import achat, settings
    from synapse.providers.transport import close_session
    from synapse.usage import ledger as ledger_mod

    settings.update({"openai_key": "sk-bench-0000000000", "openai_base_url": base})
    ledger = ledger_mod.ledger
    recorder = ledger.record
    inserts = 0
    real_insert = ledger_mod._insert

    def counting_insert(url: str, rows: list) -> None:
        nonlocal inserts
        inserts += 1
        real_insert(url, rows)

    ledger_mod._insert = counting_insert

    async def call() -> None:
        await achat("gpt-bench", "hi")

    for _ in range(200):  # warm up: pool, writer thread, database, price tables
        await call()
    await asyncio.to_thread(ledger.flush, 60)

    print(f"{'ledger':<18} c    calls/s   p50 ms   p99 ms   writer CPU ms/1k calls   rows/transaction   kill -9 loses up to")
    for c in (1, 64):
        n = N if c > 1 else N // 4
        ledger.record = lambda rec: None  # type: ignore[method-assign]
        rate, p50, p99 = await measure(call, n, c)
        print(f"{'off (baseline)':<18} {c:<4} {rate:>7.0f} {p50:>8.2f} {p99:>8.2f}")
        ledger.record = recorder  # type: ignore[method-assign]
        for linger in (0.0, 0.2):
            ledger.linger = linger
            await asyncio.to_thread(ledger.flush, 60)
            cpu0, inserts0 = thread_cpu(ledger._thread), inserts
            rate, p50, p99 = await measure(call, n, c)
            await asyncio.to_thread(ledger.flush, 60)  # the writer's backlog is part of its cost
            cpu = thread_cpu(ledger._thread) - cpu0
            batches = max(1, inserts - inserts0)
            loses = "a few rows" if linger == 0 else f"{rate * linger:,.0f} rows"
            print(f"{f'linger {linger * 1000:.0f} ms':<18} {c:<4} {rate:>7.0f} {p50:>8.2f} {p99:>8.2f}"
                  f"   {cpu / n * 1e6:>18.1f}   {n / batches:>16.1f}   {loses}")
    ledger.linger = ledger_mod.LINGER_SECONDS
    await close_session()
    proc.terminate()


if __name__ == "__main__":
    asyncio.run(main())
