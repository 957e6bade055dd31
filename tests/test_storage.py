"""The storage layer: database location, packaged Alembic migrations applied in code."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from synapse import settings as settings_mod
from synapse import storage
from synapse.storage.tables import include_name, metadata

pytestmark = pytest.mark.database


@pytest.fixture(autouse=True)
def _dispose() -> None:
    yield
    storage.dispose_all()


@pytest.mark.sqlite_only
def test_default_database_is_sqlite_in_the_data_folder(synapse_env: Path) -> None:
    assert storage.database_url(settings_mod.load()) == f"sqlite:///{synapse_env / 'synapse.db'}"
    assert storage.database_url() == f"sqlite:///{synapse_env / 'synapse.db'}"


@pytest.mark.sqlite_only
def test_database_url_setting_and_environment_override(configure, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = configure(database_url=f"sqlite:///{tmp_path / 'setting.db'}")
    assert storage.database_url(s) == f"sqlite:///{tmp_path / 'setting.db'}"
    monkeypatch.setenv("SYNAPSE_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert storage.database_url(s) == f"sqlite:///{tmp_path / 'env.db'}"  # the environment wins (scale settings)


def test_postgresql_urls_mean_the_psycopg_driver() -> None:
    for url in ("postgres://u:p@h/db", "postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"):
        assert storage.normalize_url(url) == "postgresql+psycopg://u:p@h/db"
    assert storage.normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    assert storage.is_scale_url("postgresql+psycopg://h/db") and not storage.is_scale_url("sqlite:///x.db")


@pytest.mark.sqlite_only
def test_engine_creates_the_schema_with_the_packaged_migrations(synapse_env: Path) -> None:
    eng = storage.engine(settings=settings_mod.load())
    assert (synapse_env / "synapse.db").exists()
    assert storage.current_revision(eng) == storage.HEAD_REVISION
    insp = sa.inspect(eng)
    assert set(insp.get_table_names()) >= {"usage_calls", "alembic_version"}
    cols = {c["name"] for c in insp.get_columns("usage_calls")}
    assert {"ts", "provider", "model", "agent", "session", "input_tokens", "output_tokens", "cache_read_tokens",
            "cache_write_tokens", "reasoning_tokens", "cost_usd", "savings_usd", "response_cache_hit",
            "latency_ms", "ttft_ms", "outcome"} <= cols
    with eng.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    assert storage.engine(settings=settings_mod.load()) is eng  # cached


def test_the_migration_matches_the_table_metadata(empty_database: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    eng = storage.engine(empty_database)
    with eng.connect() as conn:  # the full-text indexes a migration made by hand are left out
        diff = compare_metadata(MigrationContext.configure(conn, opts={"include_name": include_name}), metadata)
    assert diff == []


def test_downgrade_and_upgrade_again(empty_database: str) -> None:
    eng = storage.engine(empty_database)
    storage.downgrade(eng, "base")
    assert "usage_calls" not in sa.inspect(eng).get_table_names()
    assert storage.current_revision(eng) is None
    storage.migrate(eng)
    assert "usage_calls" in sa.inspect(eng).get_table_names()
    assert storage.current_revision(eng) == storage.HEAD_REVISION


def test_an_existing_database_at_head_is_not_migrated_again(empty_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage.engine(empty_database)
    storage.dispose_all()
    import alembic.command

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("alembic ran for a database already at head")

    monkeypatch.setattr(alembic.command, "upgrade", boom)
    eng = storage.engine(empty_database)
    assert storage.current_revision(eng) == storage.HEAD_REVISION


def test_instances_starting_at_once_migrate_once(empty_database: str, synapse_env: Path) -> None:
    """Four `synapse db upgrade` at the same moment on an empty database: one migrates, the
    others wait for its lock and find the schema current; every one ends at the head."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SYNAPSE_DATABASE_URL": empty_database}
    procs = [subprocess.Popen([sys.executable, "-m", "synapse.cli", "db", "upgrade"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(120), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, err
        assert f"revision {storage.HEAD_REVISION}" in out
    assert sum("migrated from (empty)" in out for _, out, _ in results) == 1  # the others found it done
    eng = storage.engine(empty_database)
    assert storage.current_revision(eng) == storage.HEAD_REVISION
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_db_upgrade_says_where_it_was_and_where_it_is(empty_database: str, run_synapse) -> None:
    url = empty_database.replace("postgres@", "postgres:s3cret-pw@")  # the test server trusts any password
    first = run_synapse("db", "upgrade", env={"SYNAPSE_DATABASE_URL": url})
    assert first.code == 0, first.err
    assert f"from (empty) to revision {storage.HEAD_REVISION}" in first.out
    assert "s3cret-pw" not in first.out + first.err  # a password in the URL is never printed
    again = run_synapse("db", "upgrade", env={"SYNAPSE_DATABASE_URL": url})
    assert again.code == 0 and f"already at revision {storage.HEAD_REVISION}" in again.out


def test_0008_adds_the_estimated_flag_and_takes_it_back(empty_database: str) -> None:
    """A ledger at 0007 gains `usage_calls.estimated` (false for the rows it has), and loses
    it again on downgrade, keeping the rows."""
    eng = sa.create_engine(storage.normalize_url(empty_database))  # not storage.engine(): it migrates to head
    try:
        storage.migrate(eng, "0007")
        row = {"ts": 1.7e9, "day": "2023-11-14", "provider": "openai", "model": "gpt-5", "upstream_model": "gpt-5",
               "input_tokens": 12, "output_tokens": 3, "call_id": "c" * 32}
        with eng.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO usage_calls ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"),
                         row)
        storage.migrate(eng)
        assert storage.current_revision(eng) == storage.HEAD_REVISION == "0008"
        with eng.connect() as conn:
            got = conn.execute(sa.text("SELECT input_tokens, estimated FROM usage_calls")).one()
        assert (got[0], bool(got[1])) == (12, False)
        storage.downgrade(eng, "0007")
        assert "estimated" not in {c["name"] for c in sa.inspect(eng).get_columns("usage_calls")}
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT input_tokens, call_id FROM usage_calls")).one() == (12, "c" * 32)
    finally:
        eng.dispose()
