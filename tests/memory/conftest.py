"""Fixtures for memory tests: a store on a fresh data folder (the bundled local model).

Migrating a new database costs about two seconds, so the schema is made once per run
and each test gets a copy of that file in its own data folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from synapse import storage
from synapse.memory import MemoryStore
from synapse.memory.vectors import cache


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("memory-template") / "synapse.db"
    eng = storage.engine(f"sqlite:///{path}")
    with eng.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    storage.dispose_all()
    return path


@pytest.fixture
def fresh_db(synapse_env: Path, migrated_db: Path) -> Path:
    """The data folder, with an empty database at the newest schema already in it."""
    synapse_env.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_db, synapse_env / "synapse.db")
    cache.clear()
    return synapse_env


@pytest.fixture
def store(fresh_db: Path) -> Iterator[MemoryStore]:
    yield MemoryStore()
    storage.dispose_all()


def db_bytes(data_dir: Path) -> bytes:
    """Everything on disk for the data folder's database: the file and its logs."""
    out = b""
    for name in ("synapse.db", "synapse.db-wal", "synapse.db-journal"):
        path = data_dir / name
        if path.exists():
            out += path.read_bytes()
    return out
