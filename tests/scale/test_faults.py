"""The usage ledger when its database fails: PostgreSQL stopped and started again under it,
and a commit whose answer was lost. Rows wait, in order, and land exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
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
from tests.conftest import TEST_SECRET_KEY
from tests.servers import Postgres, need, postgres_bin

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def own_pg() -> Iterator[Postgres]:
    """A PostgreSQL of this module's own: the tests stop and start it."""
    need("PostgreSQL (pgserver, in requirements-dev.lock)", postgres_bin() is not None)
    server = Postgres().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(own_pg: Postgres, synapse_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if own_pg.proc is None:
        own_pg.start()
    # A password in the URL (the test server trusts any): the log must never show it.
    url = own_pg.create_database(f"f{os.getpid()}_{time.monotonic_ns()}").replace("postgres@", "postgres:pw-not-logged@")
    monkeypatch.setenv("SYNAPSE_DATABASE_URL", url)
    monkeypatch.setenv("SYNAPSE_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setattr(backlog_mod, "RETRY_CAP", 0.5)  # retry often: the test waits for it
    storage.engine(url)  # migrated while the server is up
    yield url
    flush(10)
    from synapse.scale import settings_store

    settings_store.reset()
    eng = storage._engines.pop(storage.normalize_url(url), None)
    if eng is not None:
        eng.dispose()


def rec(i: int) -> CallRecord:
    return CallRecord("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", 1.765e9 + i, 0.1, 0.05,
                      Usage(input_tokens=i, output_tokens=1), "ok", False, settings=settings_mod.load())


def tokens(url: str) -> list[int]:
    with storage.engine(url).connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT input_tokens FROM usage_calls ORDER BY id")]


def test_postgresql_restarted_under_the_ledger_loses_and_doubles_nothing(
    pg_url: str, own_pg: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    settings_mod.load()  # the settings copy is read while the server is up
    for i in range(1, 101):
        record(rec(i))
    assert flush(30)
    own_pg.stop()
    for i in range(101, 301):  # calls go on while the server is down
        record(rec(i))
    assert not flush(1.0)
    assert ledger_mod.ledger.pending() >= 200
    own_pg.start()
    assert flush(30)
    assert tokens(pg_url) == list(range(1, 301))  # every row once, in order
    said = [r.getMessage() for r in caplog.records if r.name == "synapse.usage"]
    assert sum("cannot write to" in m for m in said) == 1 and sum("takes writes again" in m for m in said) == 1
    assert not any("pw-not-logged" in m for m in said) and any("***" in m for m in said)


def test_past_the_memory_bound_rows_spill_and_come_back_in_order(
    pg_url: str, own_pg: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backlog_mod, "MAX_HELD", 50)
    settings_mod.load()
    spill = backlog_mod.spill_path(storage.database_url(settings_mod.load()), settings_mod.load())
    own_pg.stop()
    for i in range(1, 401):
        record(rec(i))
    flush(1.5)
    assert spill.exists() and oct(spill.stat().st_mode & 0o777) == "0o600"
    own_pg.start()
    assert flush(30)
    assert tokens(pg_url) == list(range(1, 401))
    assert not spill.exists()


def test_a_process_that_exits_while_postgresql_is_down_leaves_its_rows_to_the_next(
    pg_url: str, own_pg: Postgres, synapse_env: Path
) -> None:
    settings_mod.load()
    code = """
        import time
        from synapse import settings
        from synapse.client import CallRecord
        from synapse.types import Usage
        from synapse.usage import ledger
        s = settings.load()
        print("ready", flush=True)
        input()  # the server is stopped now
        for i in range(1, 151):
            ledger.record(CallRecord("openai", "gpt-5", "gpt-5", time.time(), 0.1, 0.05, Usage(i, 1), "ok", False,
                                     settings=s))
        ledger.flush(1.0)
    """
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
                             env=dict(os.environ))
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    own_pg.stop()
    _, err = child.communicate("\n", timeout=60)
    assert child.returncode == 0, err
    assert "moved to" in err  # it said where the rows went
    own_pg.start()
    record(rec(1000))
    assert flush(30)
    assert tokens(pg_url) == [*range(1, 151), 1000]


@pytest.mark.database
def test_a_commit_whose_answer_was_lost_is_not_written_twice(synapse_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The transaction committed, then the connection broke before the answer: the backlog
    retries the same rows, and their call ids make the retry a no-op."""
    real = ledger_mod._insert
    lost = {"left": 1}

    def commit_then_fail(url: str, rows: list[dict[str, Any]]) -> None:
        real(url, rows)
        if lost["left"]:
            lost["left"] -= 1
            from sqlalchemy.exc import OperationalError

            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(ledger_mod, "_insert", commit_then_fail)
    monkeypatch.setattr(backlog_mod, "RETRY_BASE", 0.01)
    for i in range(1, 51):
        record(rec(i))
    assert flush(30)
    url = storage.database_url(settings_mod.load())
    assert tokens(url) == list(range(1, 51))
    with storage.engine(url).connect() as conn:
        ids = [r[0] for r in conn.exec_driver_sql("SELECT call_id FROM usage_calls")]
    assert len(set(ids)) == 50 and all(len(i) == 32 for i in ids)
