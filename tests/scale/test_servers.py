"""The servers the scale tests run: what they really are."""

from __future__ import annotations

from typing import Any


def test_the_test_postgresql_is_16_with_pgvector(pg_server: Any) -> None:
    """pgserver's build: PostgreSQL 16 and the pgvector extension, which long-term memories
    use on PostgreSQL (Debian 12 packages no pgvector)."""
    url = pg_server.create_database("vectors")
    assert url
    [(version,)] = pg_server.execute("vectors", "SHOW server_version")
    assert version.startswith("16.")
    pg_server.execute("vectors", "CREATE EXTENSION vector")
    [(distance,)] = pg_server.execute("vectors", "SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector")
    assert distance == 2.0
    [(ext,)] = pg_server.execute("vectors", "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    assert ext.split(".")[:2] >= ["0", "6"]


def test_the_test_redis_answers(redis_url: str) -> None:
    import redis

    with redis.Redis.from_url(redis_url) as r:
        assert r.ping() and r.info("server")["redis_version"].split(".")[0] >= "7"
