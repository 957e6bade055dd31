"""What checked settings and private files cost: this tree vs. a baseline tree, in one run.

    git archive main | tar -x -C /tmp/synapse-main
    .venv/bin/python bench/bench_settings.py /tmp/synapse-main [N]

Measured per tree, each in its own processes (PYTHONPATH=tree):
* `ProviderSpec.configure(settings)`: on the call path once per call (adapter lookup).
* `resolve()` of a bare name: routing, on the call path once per call.
* `settings.update()` of one key: a save (lock, re-read, check, atomic write, fsync).
* `synapse config get model`: a whole CLI command (start-up checks included), CPU ms.
Results are recorded in bench/RESULTS.md as ratios to the baseline.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_INNER = r"""
import atexit, json, shutil, sys, tempfile, time, os
os.environ["SYNAPSE_DATA_DIR"] = tempfile.mkdtemp(prefix="synapse-bench-")
atexit.register(shutil.rmtree, os.environ["SYNAPSE_DATA_DIR"], True)
from synapse import settings
from synapse.providers.catalog import get
from synapse.providers.routing import resolve
n = int(sys.argv[1])
settings.update({"anthropic_key": "sk-ant-api03-bench-0000000000000000", "model": "claude-sonnet-4-5"})
s = settings.load()
spec = get("anthropic")
out = {}
for name, fn, reps in [
    ("configure_us", lambda: spec.configure(s), n * 50),
    ("resolve_bare_us", lambda: resolve("mistral", s), n * 50),
    ("update_ms", lambda: settings.update({"request_timeout": 60}), n),
]:
    best = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best.append((time.perf_counter() - t0) / reps)
    scale = 1e3 if name.endswith("_ms") else 1e6
    out[name] = min(best) * scale
print(json.dumps(out))
"""


def inner(tree: Path, n: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", _INNER, str(n)], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout)


def cli_ms(tree: Path, n: int) -> float:
    with tempfile.TemporaryDirectory(prefix="synapse-bench-") as data:
        return _cli_ms(tree, n, data)


def _cli_ms(tree: Path, n: int, data: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1", "SYNAPSE_DATA_DIR": data}
    cmd = [sys.executable, "-m", "synapse.cli", "config", "get", "model"]
    subprocess.run([sys.executable, "-m", "synapse.cli", "config", "set", "model", "x"], env=env, check=True,
                   capture_output=True)
    import resource

    times = []
    for _ in range(n):  # CPU time (user + system) of the child: wall time swings with the machine's load
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return statistics.median(times)


def main() -> None:
    baseline = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rows: dict[str, dict[str, float]] = {}
    for _ in range(3):  # alternate the trees, keep each one's best round: load on a shared machine moves
        for label, tree in (("baseline", baseline), ("this tree", ROOT)):
            r = inner(tree, n)
            r["cli_config_get_cpu_ms"] = cli_ms(tree, 15)
            best = rows.setdefault(label, r)
            for key, value in r.items():
                best[key] = min(best[key], value)
    print(f"{'what':<36} {'baseline':>10} {'this tree':>10} {'ratio':>7}")
    for key in rows["baseline"]:
        a, b = rows["baseline"][key], rows["this tree"][key]
        print(f"{key:<36} {a:>10.2f} {b:>10.2f} {b / a:>7.2f}")


if __name__ == "__main__":
    main()
