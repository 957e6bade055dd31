"""Migration 0006: memory vectors move into pgvector's `vector` on PostgreSQL (and back),
each vector row learns its scope; without pgvector, PostgreSQL is refused with what to do."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from synapse import storage
from synapse.storage import vector as vector_type
from synapse.storage.tables import memory_vectors


def _engine(url: str) -> sa.Engine:
    url = storage.normalize_url(url)
    return sa.create_engine(url) if url.startswith("sqlite") else storage._server_engine(url)


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.database
def test_0006_converts_stored_vectors_and_0005_gets_the_same_bytes_back(empty_database: str, database: str) -> None:
    eng = _engine(empty_database)
    storage.migrate(eng, "0005")
    rng = np.random.default_rng(5)
    stored = {(1, "local:e5"): _unit(rng, 4), (2, "local:e5"): _unit(rng, 4), (2, "ollama:nomic"): _unit(rng, 3),
              (3, "local:e5"): _unit(rng, 4)}
    with eng.begin() as conn:
        conn.execute(sa.text("INSERT INTO memories (id, agent, text, fingerprint, source, created_at, updated_at, "
                             "recall_count) VALUES (:i, :a, :t, 'f', 'manual', 0, 0, 0)"),
                     [{"i": 1, "a": "agent-a", "t": "one"}, {"i": 2, "a": "*", "t": "two"}])
        # 3 is a vector whose memory is gone (nothing reads it; the migration drops it)
        conn.execute(sa.text("INSERT INTO memory_vectors (memory_id, model, dim, vector) VALUES (:i, :m, :d, :v)"),
                     [{"i": i, "m": m, "d": len(v), "v": v.astype("<f4").tobytes()} for (i, m), v in stored.items()])
    storage.migrate(eng, "0006")
    assert storage.current_revision(eng) == "0006"
    with eng.connect() as conn:
        rows = conn.execute(sa.select(memory_vectors).order_by(memory_vectors.c.memory_id, memory_vectors.c.model)).all()
        assert [(r.memory_id, r.model, r.agent, r.dim) for r in rows] == [
            (1, "local:e5", "agent-a", 4), (2, "local:e5", "*", 4), (2, "ollama:nomic", "*", 3)]
        for r in rows:  # exactly the float32 values that were stored
            assert r.vector.dtype == np.float32 and np.array_equal(r.vector, stored[(r.memory_id, r.model)])
        if database:  # PostgreSQL: a pgvector column that PostgreSQL itself computes with
            kind = conn.execute(sa.text("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                                        "WHERE attrelid = 'memory_vectors'::regclass AND attname = 'vector'")).scalar()
            assert kind == "vector"
            query = _unit(rng, 4)
            got = conn.execute(sa.text("SELECT vector <#> CAST(:q AS vector) FROM memory_vectors WHERE memory_id = 1 "
                                       "AND model = 'local:e5'"), {"q": vector_type.to_text(query)}).scalar()
            assert got == pytest.approx(-float(stored[(1, "local:e5")] @ query), abs=1e-6)
    storage.downgrade(eng, "0005")
    with eng.connect() as conn:
        back = {(int(i), str(m)): bytes(v) for i, m, v in conn.execute(
            sa.text("SELECT memory_id, model, vector FROM memory_vectors"))}
    assert back == {k: v.astype("<f4").tobytes() for k, v in stored.items() if k[0] != 3}
    storage.migrate(eng, "0006")
    assert storage.current_revision(eng) == "0006"
    eng.dispose()


@pytest.fixture
def role_database(pg_server: Any) -> str:
    """An empty database owned by a role that is not a superuser (it may not create extensions)."""
    name = f"owned{os.getpid()}_{next(_n)}"
    pg_server.execute("postgres", f"CREATE ROLE {name} LOGIN")
    pg_server.execute("postgres", f'CREATE DATABASE "{name}" OWNER {name}')
    return f"postgresql://{name}@127.0.0.1:{pg_server.port}/{name}"


_n = iter(range(1, 10**6))


def test_a_role_that_may_not_create_pgvector_is_told_to_ask_a_superuser(role_database: str, pg_server: Any) -> None:
    eng = _engine(role_database)
    with pytest.raises(vector_type.PgvectorMissing, match=r"Ask a superuser to run `CREATE EXTENSION vector;`"):
        storage.migrate(eng)
    assert storage.current_revision(eng) is None  # nothing of the migration was kept
    pg_server.execute(eng.url.database or "", "CREATE EXTENSION vector")  # what the superuser does
    storage.migrate(eng)
    assert storage.current_revision(eng) == storage.HEAD_REVISION
    eng.dispose()


def test_a_server_without_pgvector_is_refused_with_how_to_install_it(
        pg_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The test server has pgvector; an extension name it lacks stands in for a server without it."""
    url = pg_server.create_database(f"nopgv{os.getpid()}_{next(_n)}")
    monkeypatch.setattr(vector_type, "EXTENSION", "vector_not_installed")
    monkeypatch.setenv("SYNAPSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SYNAPSE_DATABASE_URL", url)
    from synapse.cli import main

    assert main(["db", "upgrade"]) == 2  # a setting (or here, the server) to fix
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "has no pgvector extension" in err and "postgresql-16-pgvector" in err and "pgvector/pgvector" in err
    eng = _engine(url)
    assert storage.current_revision(eng) is None and "usage_calls" not in sa.inspect(eng).get_table_names()
    eng.dispose()
