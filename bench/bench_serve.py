"""Time from `synapse serve` to the first answered request, with no provider configured.

    .venv/bin/python bench/bench_serve.py [N]

Issue 3 asks for under 2 s. Results are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def once() -> float:
    port = free_port()
    env = {**os.environ, "SYNAPSE_DATA_DIR": tempfile.mkdtemp(prefix="synapse-bench-")}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "synapse.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/settings/models", timeout=1) as r:
                    r.read()
                return time.perf_counter() - t0
            except OSError:
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError("synapse serve did not answer within 30 s") from None
                time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    times = [once() for _ in range(N)]
    print(f"synapse serve -> first page served: median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms (N={N})")


if __name__ == "__main__":
    main()
