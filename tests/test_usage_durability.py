"""The usage ledger never loses a row while the process lives, and writes what is queued
when the process is told to stop: SIGTERM (library, CLI-style scripts, `synapse serve`), a
database locked by another process, a database down for longer than memory should hold.

The SIGTERM tests run real subprocesses that call a fake provider in a loop with a 30 s
linger (so rows sit in the queue, as they would between batches) and are killed midway:
every call that returned must have its row."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from synapse import settings as settings_mod
from synapse import storage
from synapse.client import CallRecord
from synapse.types import Usage
from synapse.usage import backlog as backlog_mod
from synapse.usage import ledger as ledger_mod
from synapse.usage.ledger import flush, record

pytestmark = pytest.mark.database

ROOT = Path(__file__).parent.parent
T0 = 1_765_000_000.0


def rec(i: int, settings: Any = None) -> CallRecord:
    return CallRecord("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", T0 + i, 0.1, 0.05,
                      Usage(input_tokens=i, output_tokens=1), "ok", False, settings=settings or settings_mod.load())


def db_rows(data: Path) -> list[int]:
    """input_tokens of every row, in insertion order, read straight from the database."""
    if not os.environ.get("SYNAPSE_DATABASE_URL"):
        with sqlite3.connect(data / "synapse.db") as conn:
            return [r[0] for r in conn.execute("SELECT input_tokens FROM usage_calls ORDER BY id")]
    with storage.engine(os.environ["SYNAPSE_DATABASE_URL"]).connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT input_tokens FROM usage_calls ORDER BY id")]


def start(code: str, data: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SYNAPSE_DATA_DIR": str(data), "NO_PROXY": "127.0.0.1,localhost"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))


def wait_for_lines(proc: subprocess.Popen[str], n: int, timeout: float = 60) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    t0 = time.monotonic()
    while len(lines) < n:
        line = proc.stdout.readline()
        if not line:
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"child ended early: {err[-2000:]}")
        lines.append(line)
        assert time.monotonic() - t0 < timeout, "child too slow"
    return lines


def terminate(proc: subprocess.Popen[str], lines: list[str]) -> tuple[int, int, str]:
    """SIGTERM the child; (exit code, calls that returned, stderr)."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    returned = sum(1 for line in lines + out.splitlines(keepends=True) if line.startswith("ok"))
    return proc.returncode, returned, err


# --- SIGTERM ----------------------------------------------------------------------------------------

#: The child's first call, written before the soak: creating the database (imports,
#: migrations) is not what these tests time; then a 30 s linger keeps every row queued.
WARM = """
    import synapse
    from synapse.usage.ledger import ledger
    synapse.chat("claude-sonnet-4-5", "warm up")
    assert ledger.flush(120)
    print("ok", flush=True)
    ledger.linger = 30  # rows stay queued: only a drain at exit can write them
"""

SOAK = WARM + """
    import asyncio, sys
    mode = sys.argv[1]
    if mode == "sync":
        while True:
            synapse.chat("claude-sonnet-4-5", "hi")
            print("ok", flush=True)
    async def worker():
        while True:
            await synapse.achat("claude-sonnet-4-5", "hi")
            print("ok", flush=True)
    async def main():
        await asyncio.gather(*(worker() for _ in range(8)))
    asyncio.run(main())
"""


@pytest.mark.parametrize(("mode", "in_flight"), [("sync", 1), ("async", 8)])
def test_sigterm_writes_every_call_that_returned(anthropic: Any, synapse_env: Path, mode: str, in_flight: int) -> None:
    proc = start(SOAK, synapse_env, mode)
    lines = wait_for_lines(proc, 40)
    code, returned, err = terminate(proc, lines)
    assert code == -signal.SIGTERM, err  # still "killed by SIGTERM" for whoever supervises it
    rows = db_rows(synapse_env)
    # a call can be recorded and then be stopped before it printed: at most one per worker
    assert returned <= len(rows) <= returned + in_flight, (returned, len(rows))


APP_HANDLER = WARM + """
    import signal, sys
    def mine(signum, frame):
        print("mine", flush=True)
        sys.exit(3)  # atexit still runs: the ledger drains there
    signal.signal(signal.SIGTERM, mine)
    while True:
        synapse.chat("claude-sonnet-4-5", "hi")
        print("ok", flush=True)
"""


def test_a_sigterm_handler_the_application_set_is_kept(anthropic: Any, synapse_env: Path) -> None:
    proc = start(APP_HANDLER, synapse_env)
    lines = wait_for_lines(proc, 10)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert "mine" in out
    returned = sum(1 for line in lines + out.splitlines() if line.startswith("ok"))
    assert returned <= len(db_rows(synapse_env)) <= returned + 1


SERVE = WARM + """
    import socket
    import uvicorn
    from synapse.server.app import create_app
    app = create_app("127.0.0.1")

    @app.get("/test-chat")
    async def chat() -> dict:
        reply = await synapse.achat("claude-sonnet-4-5", "hi")
        return {"text": reply.text}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    print(sock.getsockname()[1], flush=True)
    # as `synapse serve` runs it (synapse/server/run.py)
    uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=3)).run(sockets=[sock])
"""


def test_sigterm_to_a_server_writes_every_call_it_answered(anthropic: Any, synapse_env: Path) -> None:
    proc = start(SERVE, synapse_env)
    port = int(wait_for_lines(proc, 2)[1])
    answered = 1  # the warm-up call
    for _ in range(30):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/test-chat", timeout=30) as resp:
            assert resp.status == 200
            answered += 1
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM, err  # uvicorn re-raises it: no atexit hook ran
    assert len(db_rows(synapse_env)) == answered


def test_the_handler_is_only_installed_from_the_main_thread_over_the_default() -> None:
    import threading

    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(ledger_mod.install_sigterm_handler()))
    t.start()
    t.join()
    assert got == [False]
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        was = ledger_mod._sigterm_installed
        ledger_mod._sigterm_installed = False
        assert ledger_mod.install_sigterm_handler() is False
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        ledger_mod._sigterm_installed = was
        signal.signal(signal.SIGTERM, previous)


# --- a database locked by another process --------------------------------------------------------

LOCKER = """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()  # hold the lock until told to let go
    conn.execute("COMMIT")
    print("released", flush=True)
"""


def _ready_database(data: Path) -> None:
    record(rec(0))
    assert flush(30)
    assert db_rows(data) == [0]


@contextmanager
def locked_by_another_process(data: Path) -> Iterator[None]:
    """synapse.db held under an exclusive lock by a separate process until the block ends."""
    locker = start(LOCKER, data, str(data / "synapse.db"))
    try:
        wait_for_lines(locker, 1)
        yield
    finally:
        assert locker.stdin is not None
        locker.stdin.write("go\n")
        locker.stdin.flush()
        locker.communicate(timeout=10)


@pytest.mark.sqlite_only  # PostgreSQL down and back: tests/scale/test_faults.py
def test_a_database_locked_by_another_process_loses_no_row_and_keeps_the_order(
    synapse_env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ledger_mod, "WRITER_BUSY_MS", 100)  # the writer gives up a try after 0.1 s
    _ready_database(synapse_env)
    with locked_by_another_process(synapse_env):
        for i in range(1, 2001):
            record(rec(i))
        assert not flush(1.0)  # locked well past the writer's busy timeout: several tries failed
        assert ledger_mod.ledger.pending() >= 2000
    assert flush(30)
    assert db_rows(synapse_env) == list(range(2001))  # every row exactly once, in order
    said = [r.getMessage() for r in caplog.records if r.name == "synapse.usage"]
    assert sum("cannot write to" in m for m in said) == 1  # once per episode, not per try or per call
    assert sum("takes writes again" in m for m in said) == 1


@pytest.mark.sqlite_only
def test_a_reader_of_one_database_does_not_wait_for_another_that_refuses_writes(
    synapse_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Usage page and session totals flush their own database's rows before they read;
    a locked database elsewhere (another settings' data folder) must not hold them up."""
    monkeypatch.setattr(ledger_mod, "WRITER_BUSY_MS", 50)
    _ready_database(synapse_env)
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("SYNAPSE_DATA_DIR", str(other))
    settings_mod._cache.clear()
    other_settings = settings_mod.load()
    record(rec(0, other_settings))
    assert flush(30)
    monkeypatch.setenv("SYNAPSE_DATA_DIR", str(synapse_env))
    settings_mod._cache.clear()
    with locked_by_another_process(other):
        record(rec(7, other_settings))  # waits for the other database
        record(rec(1))
        assert not flush(0.5)  # every database: the locked one holds a row
        assert flush(5, url=storage.database_url(settings_mod.load()))  # this one: written
        assert db_rows(synapse_env) == [0, 1]
    assert flush(30)
    assert db_rows(other) == [0, 7]


@pytest.mark.sqlite_only  # PostgreSQL down and back: tests/scale/test_faults.py
def test_past_the_memory_bound_rows_spill_to_disk_and_come_back_in_order(
    synapse_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_mod, "WRITER_BUSY_MS", 50)
    monkeypatch.setattr(backlog_mod, "MAX_HELD", 100)
    _ready_database(synapse_env)
    url = storage.database_url(settings_mod.load())
    spill = backlog_mod.spill_path(url, settings_mod.load())
    with locked_by_another_process(synapse_env):
        for i in range(1, 1001):
            record(rec(i))
        flush(1.0)
        for i in range(1001, 1501):  # more while the database is still failing
            record(rec(i))
        flush(0.5)
        assert spill.exists()
        assert oct(spill.stat().st_mode & 0o777) == "0o600"
        held = sum(b.held() for b in ledger_mod.ledger._backlogs.values())
        assert held <= 100  # memory stays bounded; the rest waits on disk
    assert flush(30)
    assert db_rows(synapse_env) == list(range(1501))
    assert not spill.exists()


EXIT_WHILE_LOCKED = """
    import time
    from synapse import settings
    from synapse.client import CallRecord
    from synapse.types import Usage
    from synapse.usage import ledger
    ledger.WRITER_BUSY_MS = 50
    s = settings.load()
    for i in range(1, 301):
        ledger.record(CallRecord("openai", "gpt-5", "gpt-5", time.time(), 0.1, 0.05, Usage(i, 1), "ok", False, settings=s))
    ledger.flush(1.0)  # the database is locked: this times out
    print("exiting", flush=True)
"""


@pytest.mark.sqlite_only  # PostgreSQL down and back: tests/scale/test_faults.py
def test_rows_a_process_could_not_write_before_it_exited_are_written_by_the_next(synapse_env: Path) -> None:
    _ready_database(synapse_env)
    with locked_by_another_process(synapse_env):
        t0 = time.monotonic()
        child = subprocess.run([sys.executable, "-c", textwrap.dedent(EXIT_WHILE_LOCKED)], capture_output=True,
                               text=True, timeout=60, cwd=str(ROOT), env={**os.environ, "SYNAPSE_DATA_DIR": str(synapse_env)})
        assert child.returncode == 0, child.stderr
        assert time.monotonic() - t0 < 30  # it did not wait for the lock to go at exit
        assert "moved to" in child.stderr  # it said where the rows went
    record(rec(1000))  # the next call to this database writes the spilled rows first
    assert flush(30)
    assert db_rows(synapse_env) == [0, *range(1, 301), 1000]


@pytest.mark.sqlite_only
def test_a_spill_file_an_older_synapse_left_is_written_with_todays_rows(synapse_env: Path) -> None:
    """A spill file holding rows from before `call_id` and `estimated` existed, then rows from
    today (an older and a newer process spilled to it): one batch of rows with different keys
    would be refused, so the missing fields get their defaults and every row goes in."""
    import orjson

    _ready_database(synapse_env)
    old = ledger_mod.row_for(rec(7))
    del old["call_id"], old["estimated"]  # as an older Synapse spilled it
    new = ledger_mod.row_for(dataclasses.replace(rec(8), estimated=True))
    s = settings_mod.load()
    backlog_mod.spill_path(storage.database_url(s), s).write_bytes(orjson.dumps(old) + b"\n" + orjson.dumps(new) + b"\n")
    record(rec(9))
    assert flush(30)
    assert db_rows(synapse_env) == [0, 7, 8, 9]
    with sqlite3.connect(synapse_env / "synapse.db") as conn:
        assert [r[0] for r in conn.execute("SELECT estimated FROM usage_calls ORDER BY id")] == [0, 0, 1, 0]
