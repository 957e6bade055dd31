"""`synapse serve --workers 2`: two processes answer /v1 on one port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai as openai_sdk

from tests.fakes.base import free_port


def test_two_workers_share_one_port(openai: Any, synapse_env: Path, run_synapse: Any) -> None:
    made = run_synapse("keys", "create", "workers")
    assert made.code == 0, made.err
    key = made.out.strip()
    port = free_port()
    log = synapse_env.parent / "serve.log"
    env = {**os.environ, "SYNAPSE_DATA_DIR": str(synapse_env), "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "synapse.cli", "serve", "--port", str(port), "--workers", "2"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        client = openai_sdk.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
                break
            except openai_sdk.APIConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                time.sleep(0.1)
        assert reply.choices[0].message.content == "You said: hi"
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 2, log.read_text()  # the worker processes (plus uvicorn's own helper, if any)
        for _ in range(6):
            assert client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]).choices
    finally:
        proc.terminate()
        proc.wait(15)
