"""The memory store: add, read, edit with history, restore, model deletes, hard deletes."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from synapse.embeddings_local import LOCAL_EMBEDDING_MODEL
from synapse.memory import MemoryNotFound, MemoryStore, MemoryStoreError
from synapse.memory.recall import search
from tests.memory.conftest import db_bytes


async def test_add_stores_text_source_and_a_local_vector(store: MemoryStore) -> None:
    m = await store.add("agent-a", "  The user's sister Claire lives in Lyon.  ", source="extract",
                        session_id="s-1", turn=3)
    assert (m.agent, m.text, m.source, m.session_id, m.turn) == \
        ("agent-a", "The user's sister Claire lives in Lyon.", "extract", "s-1", 3)
    assert m.embedded_with == [LOCAL_EMBEDDING_MODEL] and m.recall_count == 0 and m.created_at == m.updated_at
    assert store.get(m.id) == m
    assert [x.id for x in store.memories("agent-a")] == [m.id]
    assert store.memories("agent-b") == [] and store.count("agent-a") == 1


async def test_the_same_text_is_not_stored_twice(store: MemoryStore) -> None:
    first = await store.add("a", "Likes green tea")
    again = await store.add("a", "likes   GREEN tea")
    many = await store.insert("a", ["Likes green tea", "Owns a bike", "owns a bike"])
    assert again.id == first.id
    assert [(m.text, new) for m, new in many] == [("Likes green tea", False), ("Owns a bike", True),
                                                   ("Owns a bike", False)]
    assert store.count("a") == 2
    other = await store.add("b", "Likes green tea")  # another scope keeps its own
    assert other.id != first.id


async def test_update_keeps_the_old_text_in_history_and_restore_brings_it_back(store: MemoryStore) -> None:
    m = await store.add("a", "Works at Initech")
    edited = await store.update(m.id, "Works at Globex since March", actor="extract", session_id="s-9")
    assert edited.id == m.id and edited.text == "Works at Globex since March" and edited.updated_at >= m.updated_at
    history = store.history(memory_id=m.id)
    assert [(h.op, h.old_text, h.new_text, h.actor) for h in history] == [
        ("update", "Works at Initech", "Works at Globex since March", "extract"),
        ("add", None, "Works at Initech", "manual"),
    ]
    restored = await store.restore(history[0].id)
    assert (restored.id, restored.text) == (m.id, "Works at Initech")
    assert store.history(memory_id=m.id)[0].op == "restore"
    with pytest.raises(MemoryStoreError, match="no earlier text"):
        await store.restore(history[1].id)  # the add has nothing before it


async def test_a_model_delete_is_restorable_under_the_same_id(store: MemoryStore) -> None:
    m = await store.add("a", "Allergic to peanuts")
    keep = await store.add("a", "Lives in Oslo")
    await store.delete(m.id, hard=False, actor="extract")
    with pytest.raises(MemoryNotFound):
        store.get(m.id)
    entry = store.history(memory_id=m.id)[0]
    assert (entry.op, entry.old_text, entry.actor) == ("delete", "Allergic to peanuts", "extract")
    back = await store.restore(entry.id)
    assert (back.id, back.text, back.source) == (m.id, "Allergic to peanuts", "restore")
    assert back.embedded_with == [LOCAL_EMBEDDING_MODEL]
    hits = await search(store, "a", "food allergy", threshold=None)
    assert hits[0].memory.id == m.id and store.get(keep.id).text == "Lives in Oslo"


async def test_ids_are_never_reused(store: MemoryStore) -> None:
    a = await store.add("a", "one")
    b = await store.add("a", "two")
    await store.delete(b.id)
    c = await store.add("a", "three")
    assert c.id > b.id > a.id


async def test_update_or_delete_checks_the_scope(store: MemoryStore) -> None:
    m = await store.add("a", "secret of a")
    with pytest.raises(MemoryNotFound, match="of agent 'b'"):
        await store.update(m.id, "changed", agent="b")
    with pytest.raises(MemoryNotFound):
        await store.delete(m.id, agent="b")
    assert store.get(m.id).text == "secret of a"


async def test_a_hard_delete_leaves_no_trace_in_the_database_files(store: MemoryStore, synapse_env: Path) -> None:
    for i in range(30):
        await store.add("a", f"filler memory number {i} about gardening")
    m = await store.add("a", "The door code is zanzibarquux 7741")
    await store.update(m.id, "The door code is zanzibarquux 7742")
    assert b"zanzibarquux" in db_bytes(synapse_env)
    await store.delete(m.id, hard=True)
    assert b"zanzibarquux" not in db_bytes(synapse_env)
    assert store.history(memory_id=m.id) == []
    assert await search(store, "a", "zanzibarquux door code", threshold=None, mode="keyword") == []


async def test_forget_everything_clears_one_scope_from_the_file(store: MemoryStore, synapse_env: Path) -> None:
    for i in range(5):
        await store.add("a", f"quuxplorer fact {i}")
    await store.add("b", "b keeps this")
    m = await store.add("a", "another quuxplorer")
    await store.delete(m.id, hard=False)  # history holds the text until everything is forgotten
    assert store.forget_all("a") == 5
    assert store.count("a") == 0 and store.history(agent="a") == []
    assert b"quuxplorer" not in db_bytes(synapse_env)
    assert [x.text for x in store.memories("b")] == ["b keeps this"]
    with store.engine.connect() as conn:
        orphans = conn.execute(sa.text("SELECT count(*) FROM memory_vectors WHERE memory_id NOT IN "
                                       "(SELECT id FROM memories)")).scalar()
    assert orphans == 0


async def test_bad_input_gets_a_message_that_says_what_to_fix(store: MemoryStore) -> None:
    with pytest.raises(MemoryStoreError, match="needs some text"):
        await store.add("a", "   ")
    with pytest.raises(MemoryStoreError, match="at most 2000 characters"):
        await store.add("a", "x" * 2001)
    with pytest.raises(MemoryStoreError, match="name an agent"):
        await store.add("", "text")
    with pytest.raises(MemoryStoreError, match="unknown memory source"):
        await store.add("a", "text", source="guess")
    with pytest.raises(MemoryNotFound, match="synapse memory list"):
        store.get(12345)


async def test_an_embedding_failure_keeps_the_memory_for_keyword_search(store: MemoryStore, configure) -> None:
    settings = configure(embedding_model="ollama.nomic-embed-text", ollama_base_url="http://127.0.0.1:9", max_retries=0)
    broken = MemoryStore(settings)
    m = await broken.add("a", "The user's boat is called Seahorse")
    assert m.embedded_with == [] and broken.get(m.id).text == "The user's boat is called Seahorse"
    hits = await search(broken, "a", "what is my boat's name")
    assert [h.memory.id for h in hits] == [m.id] and hits[0].similarity is None and hits[0].keyword_rank == 1


async def test_export_and_import_round_trip(store: MemoryStore) -> None:
    await store.insert("a", ["First fact", "Second fact"])
    exported = store.export("a")
    assert [d["text"] for d in exported] == ["First fact", "Second fact"]
    assert await store.import_("b", exported + ["Third fact", {"text": "First fact"}]) == (3, 1)
    assert sorted(m.text for m in store.memories("b")) == ["First fact", "Second fact", "Third fact"]
    assert all(m.source == "import" for m in store.memories("b"))
    with pytest.raises(MemoryStoreError, match="item 2 has no text"):
        await store.import_("b", ["ok", {"txt": "typo"}])
