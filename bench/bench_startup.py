"""Wall time of `import synapse` and `synapse --help`, median of N fresh processes.

    .venv/bin/python bench/bench_startup.py [N]

Results are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def median_ms(cmd: list[str]) -> tuple[float, float]:
    times = []
    for _ in range(N):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times)


def main() -> None:
    py = sys.executable
    rows = [
        ("python -c pass (baseline)", [py, "-c", "pass"]),
        ("import synapse", [py, "-c", "import synapse"]),
        ("import synapse.client (call path)", [py, "-c", "import synapse.client"]),
        ("synapse --help", [py, "-m", "synapse.cli", "--help"]),
    ]
    print(f"{'what':<36} {'median ms':>10} {'min ms':>8}   (N={N})")
    for name, cmd in rows:
        med, low = median_ms(cmd)
        print(f"{name:<36} {med:>10.1f} {low:>8.1f}")


if __name__ == "__main__":
    main()
