"""`synapse serve` tunes its own garbage collector (server/heap.py); a library user's is untouched."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parent.parent


def run(code: str, data: Path) -> str:
    env = {**os.environ, "SYNAPSE_DATA_DIR": str(data)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                            timeout=120, cwd=str(ROOT))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_server_process_freezes_what_its_warm_up_loaded(synapse_env: Path) -> None:
    out = run(
        """
        import gc, sys
        default = gc.get_threshold()
        import synapse.client
        from synapse.server import heap, root
        root.warm_up().join(60)  # a library or test process: warmed up, collector untouched
        assert gc.get_threshold() == default and gc.get_freeze_count() == 0, (gc.get_threshold(), gc.get_freeze_count())
        root.from_env()  # what each `synapse serve --workers` process runs
        assert gc.get_threshold()[0] == heap.GEN0_THRESHOLD
        root.warm_up(settle=True).join(60)
        print(gc.get_freeze_count() > 10_000, "genai_prices" in sys.modules, "sqlalchemy" in sys.modules)
        """,
        synapse_env,
    )
    assert out == "True True True"


def test_synapse_serve_tunes_its_collector_before_it_serves(synapse_env: Path) -> None:
    """`serve()` calls heap.tune() and asks create_root for a server process."""
    out = run(
        """
        import argparse, gc
        from synapse.server import heap, root, run
        seen = {}
        def fake_create_root(host, **kw):
            seen["server_process"] = kw.get("server_process")
            seen["threshold"] = gc.get_threshold()[0]
            raise SystemExit(0)
        root.create_root = fake_create_root
        try:
            run.serve(argparse.Namespace(host="127.0.0.1", port=0, workers=1))
        except SystemExit:
            pass
        print(seen == {"server_process": True, "threshold": heap.GEN0_THRESHOLD})
        """,
        synapse_env,
    )
    assert out == "True"
