"""`synapse serve` keeps the garbage collector off its request path (server/root.py
`quiet_gc`): what the process holds after warm-up is frozen, young collections are rarer,
and garbage made later is still collected. Run in a child process: freezing is for a
process that only serves, never for the program (here pytest) an app is embedded in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from synapse.server.root import GC_THRESHOLD

CHILD = r"""
import gc, json, sys, threading, weakref
from synapse.server.root import warm_up

before = gc.get_threshold()[0]
warm_up(sys.argv[1] == "serve")
for t in threading.enumerate():
    if t.name == "synapse-warm-up":
        t.join(60)

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle: only the collector can free it
gone = weakref.ref(a)
del a, b
gc.collect()
print(json.dumps({"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()[0], "before": before,
                  "cycle_collected": gone() is None}))
"""


def _child(mode: str, data: Path) -> dict[str, object]:
    env = {**os.environ, "SYNAPSE_DATA_DIR": str(data)}
    out = subprocess.run([sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True, timeout=120,
                         check=True).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def test_a_serving_process_freezes_what_it_holds_after_warm_up(tmp_path: Path) -> None:
    got = _child("serve", tmp_path / "data")
    assert isinstance(got["frozen"], int) and got["frozen"] > 10_000  # modules, app, SQLAlchemy: out of every scan
    assert got["threshold"] == GC_THRESHOLD and GC_THRESHOLD > got["before"]  # type: ignore[operator]
    assert got["cycle_collected"] is True  # garbage made later is still collected


def test_an_embedded_app_leaves_the_programs_collector_alone(tmp_path: Path) -> None:
    got = _child("embedded", tmp_path / "data")
    assert got["frozen"] == 0
    assert got["threshold"] == got["before"]
    assert got["cycle_collected"] is True
