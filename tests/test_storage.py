"""The storage layer: database location, packaged Alembic migrations applied in code."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from synapse import settings as settings_mod
from synapse import storage
from synapse.storage.tables import metadata, unmanaged


@pytest.fixture(autouse=True)
def _dispose() -> None:
    yield
    storage.dispose_all()


def test_default_database_is_sqlite_in_the_data_folder(synapse_env: Path) -> None:
    assert storage.database_url(settings_mod.load()) == f"sqlite:///{synapse_env / 'synapse.db'}"
    assert storage.database_url() == f"sqlite:///{synapse_env / 'synapse.db'}"


def test_database_url_setting_and_environment_override(configure, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SYNAPSE_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert storage.database_url(settings_mod.load()) == f"sqlite:///{tmp_path / 'env.db'}"
    s = configure(database_url=f"sqlite:///{tmp_path / 'setting.db'}")
    assert storage.database_url(s) == f"sqlite:///{tmp_path / 'setting.db'}"  # the setting wins


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


def test_the_migration_matches_the_table_metadata(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    eng = storage.engine(f"sqlite:///{tmp_path / 'm.db'}")
    with eng.connect() as conn:
        def include_name(name: str | None, type_: str, parent_names: object) -> bool:
            return not (type_ == "table" and unmanaged(name))  # the FTS5 index and its shadow tables

        diff = compare_metadata(MigrationContext.configure(conn, opts={"include_name": include_name}), metadata)
    assert diff == []


def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    eng = storage.engine(f"sqlite:///{tmp_path / 'd.db'}")
    storage.downgrade(eng, "base")
    assert "usage_calls" not in sa.inspect(eng).get_table_names()
    assert storage.current_revision(eng) is None
    storage.migrate(eng)
    assert "usage_calls" in sa.inspect(eng).get_table_names()
    assert storage.current_revision(eng) == storage.HEAD_REVISION


def test_an_existing_database_at_head_is_not_migrated_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    storage.engine(url)
    storage.dispose_all()
    import alembic.command

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("alembic ran for a database already at head")

    monkeypatch.setattr(alembic.command, "upgrade", boom)
    eng = storage.engine(url)
    assert storage.current_revision(eng) == storage.HEAD_REVISION
