"""Scale mode's cost and throughput, against the single SQLite instance in the same run.

    .venv/bin/python bench/bench_scale.py [--seconds 8] [--rows 50000]

* Gateway: non-streaming /v1/chat/completions at c=64 (wrk), API key checked, usage ledger
  on, against the raw upstream of bench_gateway.py:
    - the baseline: one `synapse serve` on SQLite, no Redis;
    - one `synapse serve` on PostgreSQL + Redis (scale mode), direct;
    - 1, 2 and 4 instances on PostgreSQL + Redis behind nginx round-robin (the cluster
      test's configuration, synapse/scale/cluster.py).
  Nothing is pinned: this machine has 2 cores shared by the instances, nginx, PostgreSQL,
  Redis, the upstream and wrk, so instances past 2 measure contention, not capacity.
* The ledger: rows a second written by the writer thread (record N, flush) into SQLite and
  into PostgreSQL (the idempotent insert, ON CONFLICT (call_id) DO NOTHING).

Numbers go to bench/RESULTS.md by hand, with the date and the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_gateway import OPENAI_REQUEST, free_port, spawn, stop, upstream, wait_port, wrk  # noqa: E402

SECRET = "q3rrhxDkoQ6gKk0pu9pKMxFObUQq7m8F8X0eJfz0SdM="


def configure(env: dict[str, str], data: Path, up: int) -> str:
    """Settings and an API key, written the way a user would (the CLI), into `env`'s storage."""
    run_env = {**os.environ, **env, "SYNAPSE_DATA_DIR": str(data)}
    for key, value in (("openai_key", "sk-bench-upstream-000000"), ("openai_base_url", f"http://127.0.0.1:{up}/v1"),
                       ("max_retries", "0")):
        subprocess.run([sys.executable, "-m", "synapse.cli", "config", "set", key, value], env=run_env, check=True,
                       capture_output=True)
    made = subprocess.run([sys.executable, "-m", "synapse.cli", "keys", "create", f"bench-{time.monotonic_ns()}"],
                          env=run_env, check=True, capture_output=True, text=True)
    return made.stdout.strip()


def serve(env: dict[str, str], data: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    proc = spawn([sys.executable, "-m", "synapse.cli", "serve", "--port", str(port)], None,
                 {**env, "SYNAPSE_DATA_DIR": str(data)}, data / f"serve-{port}.log")
    wait_port(port, proc=proc)
    return proc, port


def load(url: str, key: str, seconds: float) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {key}"}
    wrk(url, OPENAI_REQUEST, auth, 64, 2, cpu="")  # warm up
    return wrk(url, OPENAI_REQUEST, auth, 64, seconds, cpu="")


def nginx_for(ports: list[int], folder: Path) -> tuple[Any, int]:
    from synapse.scale import cluster
    from tests.scale.test_cluster import _main_conf
    from tests.servers import Nginx

    lb = free_port()
    site = cluster.site_conf([f"127.0.0.1:{p}" for p in ports], f"127.0.0.1:{lb}")
    folder.mkdir(parents=True, exist_ok=True)
    return Nginx(_main_conf(site, folder), folder).start(lb), lb


def ledger_rows_per_second(url: str, data: Path, n: int) -> float:
    """Record `n` calls and time until the writer has written them all."""
    env = {**os.environ, "SYNAPSE_DATA_DIR": str(data), "SYNAPSE_SECRET_KEY": SECRET}
    if url:
        env["SYNAPSE_DATABASE_URL"] = url
    code = f"""
import time
from synapse import settings, storage
from synapse.client import CallRecord
from synapse.types import Usage
from synapse.usage import ledger
s = settings.load()
storage.engine(settings=s)
from synapse.usage import prices; prices.price("openai", "gpt-4o-mini", Usage(1, 1))  # tables loaded first
recs = [CallRecord("openai", "gpt-4o-mini", "gpt-4o-mini", time.time(), 0.1, 0.05, Usage(i % 900 + 10, 5), "ok", False,
                   settings=s) for i in range({n})]
t0 = time.perf_counter()
for r in recs:
    ledger.record(r)
assert ledger.flush(600)
print(time.perf_counter() - t0)
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=str(ROOT))
    return n / float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rows", type=int, default=50_000)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    from tests.servers import Postgres, Redis

    import multiprocessing

    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    up = free_port()
    up_proc = multiprocessing.Process(target=upstream, args=(up, 50.0, 10.0), daemon=True)
    up_proc.start()
    wait_port(up)
    procs: list[subprocess.Popen[bytes]] = []
    nginxes: list[Any] = []
    pg = Postgres().start()
    (folder / "redis").mkdir()
    redis = Redis(folder / "redis").start()
    results: dict[str, Any] = {}
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.seconds:g} s per run, c=64")
        # The baseline: one instance on SQLite.
        base_data = folder / "sqlite"
        base_data.mkdir()
        key = configure({}, base_data, up)
        proc, port = serve({}, base_data)
        results["sqlite, 1 instance"] = load(f"http://127.0.0.1:{port}/v1/chat/completions", key, args.seconds)
        stop(proc)
        # Scale mode.
        url = pg.create_database("bench")
        env = {"SYNAPSE_DATABASE_URL": url, "SYNAPSE_REDIS_URL": redis.url, "SYNAPSE_SECRET_KEY": SECRET}
        key = configure(env, folder / "cli", up)
        proc, port = serve(env, folder / "direct")
        results["postgres+redis, 1 instance"] = load(f"http://127.0.0.1:{port}/v1/chat/completions", key, args.seconds)
        stop(proc)
        for n in (1, 2, 4):
            started = [serve(env, folder / f"n{n}-{i}") for i in range(n)]
            procs += [p for p, _ in started]
            lb, lb_port = nginx_for([p for _, p in started], folder / f"nginx-{n}")
            nginxes.append(lb)
            results[f"postgres+redis, {n} behind nginx"] = load(f"http://127.0.0.1:{lb_port}/v1/chat/completions", key,
                                                                args.seconds)
            lb.stop()
            for p, _ in started:
                stop(p)
        base = results["sqlite, 1 instance"]["rps"] or 1.0
        print(f"\n{'gateway, c=64':<36} {'req/s':>8} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>8}")
        for label, r in results.items():
            print(f"{label:<36} {r['rps']:>8.0f} {r['rps'] / base:>6.2f} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['non2xx']:>8}")
        sqlite_rows = ledger_rows_per_second("", folder / "ledger-sqlite", args.rows)
        pg_rows = ledger_rows_per_second(pg.create_database("ledger"), folder / "ledger-pg", args.rows)
        print(f"\nledger, {args.rows} rows: SQLite {sqlite_rows:,.0f} rows/s; PostgreSQL {pg_rows:,.0f} rows/s "
              f"({pg_rows / sqlite_rows:.2f} x SQLite)")
    finally:
        for lb in nginxes:
            lb.stop()
        for p in procs:
            stop(p)
        up_proc.terminate()
        redis.close()
        pg.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
