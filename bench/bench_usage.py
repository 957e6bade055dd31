"""How much the usage ledger and the prompt-cache planner add to a call.

    .venv/bin/python bench/bench_usage.py [N] [--growth]

Prints µs per `record()` (what the call path pays: a queue put), the writer's
throughput (records priced and written a second, on its own thread) and its CPU time
per record (the writer shares the GIL, and on one core the CPU, with the calls), and µs
per `plan_prompt_cache` for a typical Anthropic request. Uses a throwaway data folder.
To compare with another source tree, run it again with PYTHONPATH=that tree.
`--growth` also prints the writer's CPU per record for each 20,000 records as the
table grows to 200,000 rows (an index whose inserts land anywhere slows down with size).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time


def _thread_cpu(thread: threading.Thread | None) -> float:
    """CPU seconds (user + system) a thread has used, from /proc."""
    if thread is None or thread.native_id is None:
        return 0.0
    with open(f"/proc/self/task/{thread.native_id}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 50_000
    os.environ["SYNAPSE_DATA_DIR"] = tempfile.mkdtemp(prefix="synapse-bench-")
    from synapse import settings
    from synapse.caching import SYNAPSE_VOLATILE, plan_prompt_cache
    from synapse.client import CallContext, CallRecord, build_request
    from synapse.types import Tool, Usage
    from synapse.usage import flush, record
    from synapse.usage.ledger import ledger

    s = settings.load()
    ctx = CallContext(agent="bench", session="bench")
    u = Usage(1200, 300, 8000, 500, 0)

    # warm up: start the writer, import its libraries, create the database
    record(CallRecord("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", time.time(), 0.1, 0.05, u, "ok", True, ctx, settings=s))
    flush(60)

    recs = [CallRecord("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", time.time(), 0.1, 0.05, u, "ok", True, ctx,
                       settings=s) for _ in range(n)]
    t0 = time.perf_counter()
    for r in recs:
        record(r)
    put = time.perf_counter() - t0
    t1 = time.perf_counter()
    cpu0 = _thread_cpu(ledger._thread)
    flush(600)
    drained = time.perf_counter() - t1
    cpu = _thread_cpu(ledger._thread) - cpu0
    print(f"record():            {put / n * 1e6:.2f} µs per record  ({n:,} records)")
    print(f"writer:              {n / (put + drained):,.0f} records/s priced and written (batched, own thread)")
    print(f"writer CPU:          {cpu / n * 1e6:.1f} µs per record (pricing, row, SQLite insert)")

    # Paced, as calls arrive at a server: a record every 1/rate s for 4 s. Here the writer's
    # wake-ups count too (a writer that wakes per record takes the GIL once per call).
    rate, seconds = 3000, 4.0
    paced = [CallRecord("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", time.time(), 0.1, 0.05, u, "ok", True,
                        ctx, settings=s) for _ in range(int(rate * seconds))]
    flush(60)
    cpu0, main0 = _thread_cpu(ledger._thread), time.thread_time()
    t0 = time.perf_counter()
    for i, r in enumerate(paced):
        record(r)
        if i % 3 == 2:  # 3 records a millisecond
            delay = t0 + (i + 1) / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    flush(60)
    cpu = _thread_cpu(ledger._thread) - cpu0
    print(f"writer CPU, paced:   {cpu / len(paced) * 1e6:.1f} µs per record at {rate:,} records/s "
          f"({len(paced):,} records; the caller's thread {(time.thread_time() - main0) / len(paced) * 1e6:.1f} µs each)")
    print(f"written / failed:    {ledger.written:,} / {ledger.failed}")

    system = "Long stable instructions. " * 300 + SYNAPSE_VOLATILE + "Now: 12:00"
    tools = [Tool(f"tool_{i}", "does a thing " * 20, {"type": "object", "properties": {"x": {"type": "string"}}}) for i in range(8)]
    history = []
    for i in range(10):
        history += [{"role": "user", "content": f"question {i} " * 30}, {"role": "assistant", "content": f"answer {i} " * 30}]
    history.append({"role": "user", "content": "last question"})
    m = 5_000
    reqs = [build_request("claude-sonnet-4-5", history, system=system, tools=tools) for _ in range(m)]
    t2 = time.perf_counter()
    for req in reqs:
        plan_prompt_cache(req, "anthropic")
    plan = time.perf_counter() - t2
    print(f"plan_prompt_cache(): {plan / m * 1e6:.2f} µs per request (8 tools, 21 messages, volatile system)")

    if "--growth" in sys.argv:
        per: list[str] = []
        for _ in range(10):
            batch = [CallRecord("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", time.time(), 0.1, 0.05, u, "ok",
                                True, ctx, settings=s) for _ in range(20_000)]
            cpu0 = _thread_cpu(ledger._thread)
            for r in batch:
                record(r)
            flush(600)
            per.append(f"{(_thread_cpu(ledger._thread) - cpu0) / len(batch) * 1e6:.1f}")
        print(f"writer CPU by table size (µs per record, each 20,000 more rows): {' '.join(per)}")


if __name__ == "__main__":
    main()
