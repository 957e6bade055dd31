"""Two Synapse processes on one database see each other's memory writes in their very next
search by meaning: on PostgreSQL the database searches (no copy to go stale), on SQLite
each process's matrix follows the scope version."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.database

ROOT = Path(__file__).resolve().parents[2]


class Instance:
    """One worker process (tests/memory/worker.py) with this test's environment."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.memory.worker"], cwd=ROOT, env=dict(os.environ),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def __call__(self, **cmd: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            raise AssertionError(f"the worker did not answer {cmd}: {self.proc.stderr.read() if self.proc.stderr else ''}")
        out = json.loads(line)
        assert "error" not in out, out["error"]
        return out

    def search(self, agent: str, query: str, k: int = 1) -> list[tuple[int, str]]:
        return [(int(i), str(t)) for i, t in self(op="search", agent=agent, query=query, k=k)["hits"]]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def instances(fresh_db: Path) -> Iterator[tuple[Instance, Instance]]:
    a, b = Instance(), Instance()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_two_processes_see_each_others_writes_at_once(instances: tuple[Instance, Instance]) -> None:
    a, b = instances
    cat = a(op="add", agent="agent-x", text="The user's cat is called Biscuit.")["id"]
    a(op="add", agent="agent-x", text="The user's sister Claire lives in Lyon.")
    a(op="add", agent="agent-x", text="The user is allergic to peanuts.")
    # both have searched the scope (on SQLite each now holds its matrix of it)
    assert a.search("agent-x", "what animal do I have at home?")[0][0] == cat
    assert b.search("agent-x", "what animal do I have at home?")[0][0] == cat

    rex = b(op="add", agent="agent-x", text="The user's dog is a beagle named Rex.")["id"]
    assert a.search("agent-x", "what breed is my dog") == [(rex, "The user's dog is a beagle named Rex.")]

    a(op="update", id=rex, text="The user's dog Rex is a basset hound.")
    assert b.search("agent-x", "what breed is my dog") == [(rex, "The user's dog Rex is a basset hound.")]

    b(op="delete", id=rex)
    assert rex not in [i for i, _ in a.search("agent-x", "what breed is my dog", k=10)]
    shared = b(op="add", agent="*", text="The company is called Northwind Traders.")["id"]
    assert a.search("agent-x", "what is the name of our company")[0][0] == shared
