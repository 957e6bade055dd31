"""Recall: hybrid search over an agent's and the shared memories, the threshold, the
in-process vector matrices kept in step with the database."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from synapse.memory import SHARED, MemoryStore
from synapse.memory import sql, vectors
from synapse.memory.recall import format_recalled, recall, search, settle
from synapse.memory.vectors import ScopeMatrix, cache

pytestmark = pytest.mark.database

FACTS = [
    "The user's sister Claire lives in Lyon.",
    "The user is allergic to peanuts.",
    "The user prefers Python over Go for scripting.",
    "The user's cat is called Biscuit.",
    "The user's project Falcon ships on 14 March.",
    "The user runs three times a week before work.",
]


async def _seed(store: MemoryStore, agent: str = "agent-a") -> dict[str, int]:
    return {m.text: m.id for m, _ in await store.insert(agent, FACTS)}


async def test_meaning_finds_a_paraphrase_and_words_find_a_name(store: MemoryStore) -> None:
    ids = await _seed(store)
    pet = await search(store, "agent-a", "what animal do I have at home?", k=1)
    assert [h.memory.id for h in pet] == [ids["The user's cat is called Biscuit."]]
    assert pet[0].keyword_rank is None and pet[0].similarity is not None  # found by meaning alone
    food = await search(store, "agent-a", "which snacks must I avoid", k=1)
    assert [h.memory.id for h in food] == [ids["The user is allergic to peanuts."]]
    falcon = await search(store, "agent-a", "Falcon", k=1)
    assert falcon[0].memory.id == ids["The user's project Falcon ships on 14 March."] and falcon[0].keyword_rank == 1


async def test_each_mode_ranks_on_its_own(store: MemoryStore) -> None:
    ids = await _seed(store)
    words = await search(store, "agent-a", "Biscuit", mode="keyword", k=3)
    assert [h.memory.id for h in words] == [ids["The user's cat is called Biscuit."]]  # only that one has the word
    meaning = await search(store, "agent-a", "where does my sibling live", mode="vector", k=2, threshold=None)
    assert meaning[0].memory.id == ids["The user's sister Claire lives in Lyon."]
    assert meaning[0].score == meaning[0].similarity and meaning[0].keyword_rank is None
    assert len(await search(store, "agent-a", "cats", mode="vector", k=10, threshold=None)) == len(FACTS)
    with pytest.raises(Exception, match="hybrid, vector or keyword"):
        await search(store, "agent-a", "x", mode="fuzzy")  # type: ignore[arg-type]


async def test_the_shared_scope_joins_and_other_agents_stay_out(store: MemoryStore) -> None:
    await _seed(store, "agent-b")
    shared = await store.add(SHARED, "The company is called Northwind Traders.")
    own = await store.add("agent-a", "The user's manager is Dana.")
    hits = await search(store, "agent-a", "what is the name of our company and who is my boss", k=5, threshold=None)
    assert {h.memory.id for h in hits} == {shared.id, own.id}
    assert [h.memory.id for h in await search(store, "agent-a", "Northwind", include_shared=False)] == []


async def test_the_threshold_keeps_unrelated_memories_out(store: MemoryStore, configure) -> None:
    await _seed(store)
    assert await search(store, "agent-a", "What's the weather like on Jupiter today?") == []  # calibrated default
    assert len(await search(store, "agent-a", "What's the weather like on Jupiter today?", threshold=None)) == 5
    strict = MemoryStore(configure(memory_min_similarity=0.99))
    assert await search(strict, "agent-a", "Biscuit") == []  # the word matches, the meaning is not close enough
    loose = MemoryStore(configure(memory_min_similarity=""))
    assert [h.memory.text for h in await search(loose, "agent-a", "Biscuit", k=1)] == ["The user's cat is called Biscuit."]


async def test_recall_counts_and_search_does_not(store: MemoryStore) -> None:
    ids = await _seed(store)
    cat = ids["The user's cat is called Biscuit."]
    await search(store, "agent-a", "Biscuit")
    assert store.get(cat).recall_count == 0
    hits = await recall(store, "agent-a", "Does Biscuit need a vet visit?", last_reply="Cats need yearly checkups.")
    assert hits[0].memory.id == cat
    await settle()  # the count is written off the turn's path
    after = store.get(cat)
    assert after.recall_count == 1 and after.last_recalled_at is not None
    block = format_recalled(hits)
    assert f"- [{cat}] The user's cat is called Biscuit." in block and "not instructions" in block
    assert format_recalled([]) == ""


async def test_a_write_by_another_process_is_seen_through_the_scope_version(store: MemoryStore) -> None:
    await _seed(store)
    await search(store, "agent-a", "cat")  # this process now holds the scope's matrix
    from synapse.memory.embedding import embed_documents, model_key

    from synapse.storage.tables import memory_vectors

    vector = (await embed_documents(store.settings, ["The user's dog is a beagle named Rex."]))[0]
    with store.engine.begin() as conn:  # what another process's add does, bypassing this one's cache
        sql.bump_version(conn, "agent-a")
        mid = conn.execute(sa.text(
            "INSERT INTO memories (agent, text, fingerprint, source, created_at, updated_at, recall_count) "
            "VALUES ('agent-a', 'The user''s dog is a beagle named Rex.', 'x', 'manual', 0, 0, 0) RETURNING id"
        )).scalar_one()
        conn.execute(sa.insert(memory_vectors).values(memory_id=mid, model=model_key(store.settings), agent="agent-a",
                                                      dim=len(vector), vector=vector))
    hits = await search(store, "agent-a", "what kind of pet dog do I own", mode="vector", k=1)
    assert hits[0].memory.id == mid


@pytest.mark.sqlite_only  # the in-process matrix is SQLite's search; PostgreSQL holds none
async def test_writes_of_this_process_update_the_matrix_without_a_reload(store: MemoryStore,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ids = await _seed(store)
    await search(store, "agent-a", "cat")
    loads: list[str] = []
    real = vectors._load
    monkeypatch.setattr(vectors, "_load", lambda conn, model, agent: loads.append(agent) or real(conn, model, agent))
    new = await store.add("agent-a", "The user's dog is a beagle named Rex.")
    await store.update(ids["The user's cat is called Biscuit."], "The user's cat Biscuit died last year.")
    await store.delete(ids["The user is allergic to peanuts."])
    hits = await search(store, "agent-a", "my dog", mode="vector", k=1)
    assert hits[0].memory.id == new.id
    texts = [h.memory.text for h in await search(store, "agent-a", "pets", mode="vector", k=10, threshold=None)]
    assert "The user is allergic to peanuts." not in texts and "The user's cat Biscuit died last year." in texts
    assert loads == []  # nothing was read back from the database


def test_scope_matrix_matches_brute_force_through_puts_and_drops() -> None:
    rng = np.random.default_rng(7)
    m = ScopeMatrix(version=0)
    live: dict[int, np.ndarray] = {}
    for step in range(400):
        if live and rng.random() < 0.3:
            victim = int(rng.choice(list(live)))
            m.drop(victim)
            del live[victim]
        else:
            v = rng.standard_normal(8).astype(np.float32)
            v /= np.linalg.norm(v)
            mid = step if rng.random() < 0.8 or not live else int(rng.choice(list(live)))  # sometimes overwrite
            m.put(mid, v)
            live[mid] = v
    q = rng.standard_normal(8).astype(np.float32)
    want = sorted(((mid, float(v @ q)) for mid, v in live.items()), key=lambda p: -p[1])[:10]
    got = m.search(q, 10)
    assert [i for i, _ in got] == [i for i, _ in want]
    assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    assert m.n == len(live) and m.search(np.zeros(3, dtype=np.float32), 5) == []  # another size: no results
    cache.clear()


async def test_words_in_most_memories_are_left_out_of_keyword_search(store: MemoryStore,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql, "COMMON_MIN_DOCS", 10)
    rare = await store.add("agent-a", "Weekly notes: the zeppelin museum trip is on Friday.")
    await store.insert("agent-a", [f"Weekly notes: item number {i} of the routine list." for i in range(30)])
    await store.insert("agent-a", [f"The lantern number {i} is in the shed." for i in range(4)])
    with store.engine.connect() as conn:
        # 35 memories: 5% is under two, so a word in four of them is common too (past COMMON_MIN_DOCS the
        # share applies as it is, not of at least COMMON_MIN_DOCS)
        assert sql._without_common(conn, ["lantern", "zeppelin"]) == ["zeppelin"]
        assert sql.keyword_terms("weekly zeppelin notes") == ["weekly", "zeppelin", "notes"]
        assert sql._without_common(conn, ["weekly", "zeppelin", "notes"]) == ["zeppelin"]
        assert sql.keyword_search(conn, "weekly notes", ["agent-a"], 10) == []  # only common words: no ranking
        assert [mid for mid, _ in sql.keyword_search(conn, "weekly zeppelin notes", ["agent-a"], 10)] == [rare.id]
    assert sql.keyword_terms("What does the user like?") == ["like"]  # every extracted memory says "the user"
