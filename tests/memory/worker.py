"""A process that owns a MemoryStore and obeys one JSON command per line on stdin, answering
one JSON line on stdout: the other Synapse instance of tests/memory/test_processes.py.

    {"op": "add", "agent": A, "text": T}                -> {"id": N}
    {"op": "update", "id": N, "text": T}                 -> {"id": N}
    {"op": "delete", "id": N}                            -> {"id": N}
    {"op": "search", "agent": A, "query": Q, "k": K}     -> {"hits": [[id, text], ...]}  (by meaning alone)
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def main() -> None:
    from synapse.memory import MemoryStore
    from synapse.memory.recall import search

    store = MemoryStore()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        cmd: dict[str, Any] = json.loads(line)
        try:
            if cmd["op"] == "add":
                out: dict[str, Any] = {"id": (await store.add(cmd["agent"], cmd["text"])).id}
            elif cmd["op"] == "update":
                out = {"id": (await store.update(cmd["id"], cmd["text"])).id}
            elif cmd["op"] == "delete":
                out = {"id": (await store.delete(cmd["id"])).id}
            else:
                hits = await search(store, cmd["agent"], cmd["query"], k=cmd["k"], mode="vector", threshold=None)
                out = {"hits": [[h.memory.id, h.memory.text] for h in hits]}
        except Exception as exc:  # the test reads it and fails with it
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
