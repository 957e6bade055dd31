"""The usage ledger on synthetic CallRecords: queued, batched, priced, never lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from synapse import settings as settings_mod
from synapse import storage
from synapse.client import CallContext, CallRecord
from synapse.types import Usage
from synapse.usage import ledger as ledger_mod
from synapse.usage.prices import price
from synapse.usage.ledger import flush, record, row_for

pytestmark = pytest.mark.database

T0 = 1_765_000_000.0  # 2025-12-06 05:46:40 UTC


def rec(usage: Usage | None = None, **kw: Any) -> CallRecord:
    base: dict[str, Any] = dict(
        provider="anthropic", model="claude-sonnet-4-5", upstream_model="claude-sonnet-4-5", started_at=T0,
        latency=0.25, ttft=0.1, usage=usage or Usage(), outcome="ok", stream=False, context=None,
        settings=settings_mod.load(),
    )
    base.update(kw)
    return CallRecord(**base)


def rows(settings: Any = None) -> list[dict[str, Any]]:
    from synapse.storage.tables import usage_calls

    assert flush(30)
    eng = storage.engine(settings=settings or settings_mod.load())
    with eng.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(usage_calls).order_by(usage_calls.c.id)).mappings()]


def test_a_record_becomes_one_priced_row(synapse_env: Path) -> None:
    u = Usage(input_tokens=120, output_tokens=40, cache_read_tokens=3000, cache_write_tokens=500, reasoning_tokens=7)
    ctx = CallContext(agent="helper", session="s-1")
    record(rec(u, context=ctx, stream=True))
    [row] = rows()
    expected = price("anthropic", "claude-sonnet-4-5", u, when=T0)
    assert expected is not None
    assert row["provider"] == "anthropic" and row["model"] == "claude-sonnet-4-5"
    assert (row["agent"], row["session"], row["kind"], row["stream"]) == ("helper", "s-1", "chat", True)
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"],
            row["reasoning_tokens"]) == (120, 40, 3000, 500, 7)
    assert row["cost_usd"] == pytest.approx(expected.cost_usd)
    assert row["savings_usd"] == pytest.approx(expected.savings_usd)
    assert row["savings_usd"] == pytest.approx((3000 * (3 - 0.3) - 500 * (3.75 - 3)) / 1e6)
    assert (row["ts"], row["day"]) == (T0, "2025-12-06")
    assert (row["latency_ms"], row["ttft_ms"], row["outcome"], row["response_cache_hit"]) == (250.0, 100.0, "ok", False)
    assert ctx.spent_usd == pytest.approx(expected.cost_usd)  # the run's spend is kept for cost limits


def test_unknown_price_is_stored_as_null_not_zero(synapse_env: Path) -> None:
    record(rec(Usage(input_tokens=10, output_tokens=5), provider="oaic", model="oaic.mystery", upstream_model="mystery"))
    record(rec(Usage(), kind="embed", provider="openai", model="text-embedding-3-small", upstream_model="text-embedding-3-small"))
    r1, r2 = rows()
    assert r1["cost_usd"] is None and r1["savings_usd"] is None
    assert r2["cost_usd"] is None and r2["kind"] == "embed"


def test_a_call_with_no_tokens_costs_nothing_even_without_a_price(synapse_env: Path) -> None:
    record(rec(Usage(), provider="oaic", model="oaic.mystery", upstream_model="mystery", outcome="overloaded"))
    [row] = rows()
    assert (row["cost_usd"], row["savings_usd"], row["outcome"]) == (0.0, 0.0, "overloaded")


def test_a_response_cache_hit_is_free_and_saves_what_the_call_would_cost(synapse_env: Path) -> None:
    u = Usage(input_tokens=2000, output_tokens=300)
    record(rec(u, response_cache_hit=True))
    [row] = rows()
    assert row["response_cache_hit"] is True
    assert row["cost_usd"] == 0.0
    assert row["savings_usd"] == pytest.approx((2000 * 3 + 300 * 15) / 1e6)
    assert row["input_tokens"] == row["output_tokens"] == 0  # nothing was sent to the provider


def test_errors_are_recorded_with_their_kind(synapse_env: Path) -> None:
    record(rec(outcome="rate_limit", ttft=None))
    [row] = rows()
    assert row["outcome"] == "rate_limit" and row["ttft_ms"] is None and row["cost_usd"] == 0.0


def test_many_records_are_written_in_batches_and_none_is_lost(synapse_env: Path) -> None:
    before = ledger_mod.ledger.written
    for i in range(2500):
        record(rec(Usage(input_tokens=i, output_tokens=1), started_at=T0 + i))
    got = rows()
    assert len(got) == 2500
    assert [r["input_tokens"] for r in got] == list(range(2500))
    assert ledger_mod.ledger.written - before == 2500


@pytest.mark.sqlite_only  # one data folder, one SQLite file; a shared database is one for all
def test_each_record_goes_to_the_database_of_its_own_settings(synapse_env: Path, tmp_path: Path) -> None:
    other = settings_mod.load(tmp_path / "elsewhere" / "settings.json")
    record(rec(Usage(input_tokens=1)))
    record(rec(Usage(input_tokens=2), settings=other))
    assert [r["input_tokens"] for r in rows()] == [1]
    assert [r["input_tokens"] for r in rows(other)] == [2]
    assert (tmp_path / "elsewhere" / "synapse.db").exists()


@pytest.mark.sqlite_only  # a file that cannot be made; a server that is down: tests/scale/test_faults.py
def test_a_database_that_cannot_be_opened_keeps_its_rows_until_it_can(synapse_env: Path, tmp_path: Path) -> None:
    """Its rows wait (no row is dropped while the process lives); other databases go on."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    bad = {"database_url": f"sqlite:///{blocker}/sub/synapse.db"}
    failed = ledger_mod.ledger.failed
    record(rec(Usage(input_tokens=1), settings=bad))
    record(rec(Usage(input_tokens=2)))
    assert not flush(0.5)  # the bad database still holds its row
    eng = storage.engine(settings=settings_mod.load())
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT input_tokens FROM usage_calls")).scalars().all() == [2]
    assert ledger_mod.ledger.pending() >= 1 and ledger_mod.ledger.last_error
    blocker.unlink()  # the folder can be created now: the held row lands on the next retry
    assert [r["input_tokens"] for r in rows(bad)] == [1]
    assert ledger_mod.ledger.failed == failed  # nothing was given up


def test_row_for_is_pure(synapse_env: Path) -> None:
    r = rec(Usage(input_tokens=5, output_tokens=5))
    assert row_for(r) == row_for(r)
    assert row_for(r)["cost_usd"] == pytest.approx((5 * 3 + 5 * 15) / 1e6)


def _run_script(code: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYNAPSE_DATA_DIR": str(data)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=60, cwd=str(Path(__file__).parent.parent))


def test_a_clean_exit_writes_everything_still_queued(synapse_env: Path) -> None:
    result = _run_script(
        """
        import time
        from synapse.client import CallRecord
        from synapse.types import Usage
        from synapse.usage import record
        from synapse import settings
        s = settings.load()
        for i in range(300):
            record(CallRecord("openai", "gpt-5", "gpt-5", time.time(), 0.1, 0.05, Usage(i, 1), "ok", True, settings=s))
        # no flush: the atexit hook must write them
        """,
        synapse_env,
    )
    assert result.returncode == 0, result.stderr
    eng = storage.engine(settings=settings_mod.load())
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*), sum(input_tokens) FROM usage_calls")).one() == (300, sum(range(300)))


def test_the_call_path_imports_no_database_or_price_library(synapse_env: Path) -> None:
    result = _run_script(
        """
        import sys
        import synapse.client, synapse.usage, synapse.caching
        heavy = [m for m in ("sqlalchemy", "alembic", "genai_prices", "numpy", "fastapi") if m in sys.modules]
        print(heavy)
        """,
        synapse_env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_recording_is_a_cheap_queue_put(synapse_env: Path) -> None:
    """Not a timing test: recording must not touch the database on the caller's thread."""
    import threading

    seen: list[str] = []
    real_engine = storage.engine

    def spy(*a: Any, **k: Any) -> Any:
        seen.append(threading.current_thread().name)
        return real_engine(*a, **k)

    storage_engine = storage.engine
    one = rec(Usage(input_tokens=1))  # (in scale mode, reading the settings reads the database)
    try:
        storage.engine = spy  # type: ignore[assignment]
        record(one)
        assert flush(30)
    finally:
        storage.engine = storage_engine  # type: ignore[assignment]
    assert seen and all(name == "synapse-usage-writer" for name in seen)
    assert threading.current_thread().name not in seen


def test_a_flush_ends_the_writers_linger_at_once(synapse_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer sleeps through its linger instead of waking for every record; a flush wakes it."""
    record(rec(Usage(input_tokens=1)))
    assert flush(60)  # the database exists: what follows is not its creation
    monkeypatch.setattr(ledger_mod.ledger, "linger", 30.0)
    record(rec(Usage(input_tokens=2)))
    assert flush(10)
    assert [r["input_tokens"] for r in rows()] == [1, 2]


def test_a_queue_longer_than_one_round_is_written_without_lingering_between_rounds(
    synapse_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(rec(Usage(input_tokens=0)))
    assert flush(60)
    monkeypatch.setattr(ledger_mod, "ROUND_MAX", 10)
    monkeypatch.setattr(ledger_mod.ledger, "linger", 30.0)
    inserts: list[int] = []
    real_insert = ledger_mod._insert
    monkeypatch.setattr(ledger_mod, "_insert", lambda url, batch: (inserts.append(len(batch)), real_insert(url, batch)))
    for i in range(1, 36):
        record(rec(Usage(input_tokens=i)))
    assert flush(10)  # one wake for the flush; a second 30 s linger would time this out
    assert [r["input_tokens"] for r in rows()] == list(range(36))
    assert sum(inserts) == 35 and len(inserts) >= 4  # rounds of at most 10 records


@pytest.mark.sqlite_only  # moves the ledger by the database_url setting (SYNAPSE_DATABASE_URL wins in scale mode)
def test_a_new_settings_snapshot_is_followed_to_its_database(synapse_env: Path, tmp_path: Path) -> None:
    """The writer keeps the last snapshot's database URL; a save makes a new snapshot."""
    record(rec(Usage(input_tokens=1)))
    assert flush(60)
    moved = settings_mod.update({"database_url": f"sqlite:///{tmp_path / 'moved.db'}"})
    record(rec(Usage(input_tokens=2), settings=moved))
    assert [r["input_tokens"] for r in rows(moved)] == [2]
    settings_mod.update({"database_url": None})
    assert [r["input_tokens"] for r in rows()] == [1]


def test_call_ids_are_unique_and_later_ones_sort_later() -> None:
    """Time-ordered ids keep the unique index on call_id growing at its end (a random id
    made every insert land anywhere in it: the writer slowed down as the table grew)."""
    import time

    ids = [ledger_mod.new_call_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids) and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    first = ledger_mod.new_call_id()
    time.sleep(0.002)
    assert ledger_mod.new_call_id() > first
