"""The memory store on PostgreSQL: the same code, the tsvector keyword search, the GIN index.

Skipped unless SYNAPSE_TEST_POSTGRES_URL names an empty database, e.g.
`postgresql+psycopg://postgres@127.0.0.1:5432/synapse_test` (needs psycopg installed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from synapse.memory import MemoryStore
from synapse.memory.recall import search

URL = os.environ.get("SYNAPSE_TEST_POSTGRES_URL", "")

pytestmark = pytest.mark.skipif(not URL, reason="set SYNAPSE_TEST_POSTGRES_URL to run against PostgreSQL")


@pytest.fixture
def pg(synapse_env: Any) -> Iterator[MemoryStore]:
    from synapse import storage
    from synapse.memory.vectors import cache

    pytest.importorskip("psycopg")
    eng = storage.engine(URL)
    storage.downgrade(eng, "base")  # a clean schema for every test
    storage.dispose_all()
    cache.clear()
    yield MemoryStore({"database_url": URL})
    storage.dispose_all()


async def test_store_search_history_and_deletes_on_postgres(pg: MemoryStore) -> None:
    stored = await pg.insert("a", ["The user's sister Claire lives in Lyon.", "The user is allergic to peanuts.",
                                   "The user's cat is called Biscuit.", "the user's cat is called biscuit."])
    assert [new for _, new in stored] == [True, True, True, False]
    sister, peanuts, cat = (m.id for m, _ in stored[:3])
    assert [h.memory.id for h in await search(pg, "a", "Biscuit", mode="keyword")] == [cat]
    assert (await search(pg, "a", "which snacks must I avoid", k=1))[0].memory.id == peanuts
    await pg.update(sister, "The user's sister Claire lives in Paris.")
    assert [h.memory.id for h in await search(pg, "a", "Paris", mode="keyword")] == [sister]
    await pg.delete(peanuts, hard=False, actor="extract")
    back = await pg.restore(pg.history(memory_id=peanuts)[0].id)
    assert (back.id, back.text) == (peanuts, "The user is allergic to peanuts.")
    await pg.delete(cat, hard=True)
    assert pg.history(memory_id=cat) == [] and pg.count("a") == 2
    assert pg.forget_all("a") == 2 and pg.count("a") == 0
