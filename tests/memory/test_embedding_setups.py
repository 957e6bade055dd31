"""Memories with each kind of embedding setup, and re-embedding when it changes:
interrupted and resumed, nothing lost or doubled, old vectors used until it is done."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from synapse.embeddings_local import LOCAL_EMBEDDING_MODEL
from synapse.errors import SynapseError
from synapse.memory import MemoryStore
from synapse.memory.recall import search
from synapse.memory.reembed import Progress, reembed, status
from tests.fakes.ollama import OllamaFake

NOMIC = "ollama:nomic-embed-text"
TEXTS = [f"The user's fact number {i}: likes colour {c}." for i, c in
         enumerate(["red", "blue", "green", "amber", "violet", "teal", "ochre"])]


@pytest.fixture
def nomic(ollama: OllamaFake, configure: Any) -> OllamaFake:
    configure(embedding_model="ollama.nomic-embed-text")
    return ollama


def vector_rows(store: MemoryStore) -> list[tuple[int, str]]:
    with store.engine.connect() as conn:
        return sorted((int(i), str(m)) for i, m in conn.execute(sa.text("SELECT memory_id, model FROM memory_vectors")))


async def test_the_local_model_needs_no_key_and_no_network(fresh_db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from synapse.providers import transport

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the local model made a network call")

    monkeypatch.setattr(transport, "request", no_network)
    monkeypatch.setattr(transport, "open_stream", no_network)
    store = MemoryStore()
    m = await store.add("a", "The user's favourite composer is Satie.")
    assert m.embedded_with == [LOCAL_EMBEDDING_MODEL]
    assert (await search(store, "a", "which musician do I love most", k=1))[0].memory.id == m.id


async def test_an_ollama_setup_embeds_with_nomic_prefixes(nomic: OllamaFake, fresh_db: Any) -> None:
    store = MemoryStore()
    m = await store.add("a", "The user keeps bees.")
    assert m.embedded_with == [NOMIC]
    hits = await search(store, "a", "bees", k=1)
    assert hits[0].memory.id == m.id
    inputs = [r.json()["input"] for r in nomic.requests if r.path == "/api/embed"]
    assert inputs == [["search_document: The user keeps bees."], ["search_query: bees"]]
    assert all(r.json()["model"] == "nomic-embed-text" for r in nomic.requests)


async def test_a_bedrock_setup_embeds_with_titan(bedrock: Any, configure: Any, fresh_db: Any) -> None:
    configure(embedding_model="amazon.titan-embed-text-v2:0")
    store = MemoryStore()
    m = await store.add("a", "The user's boat is called Seahorse.")
    assert m.embedded_with == ["bedrock:amazon.titan-embed-text-v2:0"]
    hits = await search(store, "a", "Seahorse", k=1)
    assert hits[0].memory.id == m.id and hits[0].similarity is not None
    bodies = [r.json() for r in bedrock.requests]
    assert bodies == [{"inputText": "The user's boat is called Seahorse."}, {"inputText": "Seahorse"}]
    assert all(r.path.endswith("/invoke") and "titan-embed-text-v2" in r.path for r in bedrock.requests)


async def test_reembed_interrupted_and_resumed_loses_and_doubles_nothing(nomic: OllamaFake, configure: Any,
                                                                        fresh_db: Any) -> None:
    old = MemoryStore()
    ids = [m.id for m, _ in await old.insert("a", TEXTS[:5])] + [(await old.add("*", TEXTS[5])).id]
    assert {model for _, model in vector_rows(old)} == {NOMIC}
    new = MemoryStore(configure(embedding_model=""))  # back to the bundled model
    assert status(new).as_dict() | {} == Progress(LOCAL_EMBEDDING_MODEL, 0, 6).as_dict()

    seen: list[tuple[int, int]] = []

    def stop_after_first_batch(p: Progress) -> None:
        seen.append((p.done, p.total))
        if p.done >= 2:
            raise KeyboardInterrupt  # Ctrl+C between batches

    with pytest.raises(KeyboardInterrupt):
        await reembed(new, batch=2, on_progress=stop_after_first_batch)
    assert seen == [(0, 6), (2, 6)]
    rows = vector_rows(new)
    assert [i for i, m in rows if m == LOCAL_EMBEDDING_MODEL] == ids[:2]
    assert [i for i, m in rows if m == NOMIC] == ids  # the old vectors are all still there
    # until it is done, recall searches with the old vectors (the query goes to Ollama)
    before = len(nomic.requests)
    hits = await search(new, "a", TEXTS[3], k=3, mode="vector", threshold=None)
    assert [r.json()["input"] for r in nomic.requests[before:]] == [[f"search_query: {TEXTS[3]}"]]
    query = np.asarray(nomic.vector(f"search_query: {TEXTS[3]}"))
    sims = {i: float(query @ np.asarray(nomic.vector(f"search_document: {t}"))) for i, t in zip(ids, TEXTS[:6])}
    assert [(h.memory.id, round(h.similarity or 0, 5)) for h in hits] == \
        [(i, round(v, 5)) for i, v in sorted(sims.items(), key=lambda kv: -kv[1])[:3]]  # the fake's nomic space

    nomic.reset()  # a memory added meanwhile is embedded by the new model directly
    late = await new.add("a", TEXTS[6])
    progress: list[tuple[int, int]] = []
    done = await reembed(new, batch=2, on_progress=lambda p: progress.append((p.done, p.total)))
    assert progress[0] == (3, 7) and progress[-1] == (7, 7) and done.finished and done.pruned == 6
    assert vector_rows(new) == sorted((i, LOCAL_EMBEDDING_MODEL) for i in ids + [late.id])
    assert new.count() == 7 and nomic.requests == []  # resumed without asking the old model anything
    hits = await search(new, "a", "which colour is fact number 4", k=1)
    assert hits[0].memory.id == ids[4] and hits[0].similarity is not None


async def test_a_failing_batch_keeps_what_was_done(nomic: OllamaFake, configure: Any, fresh_db: Any) -> None:
    local = MemoryStore(configure(embedding_model=""))
    ids = [m.id for m, _ in await local.insert("a", TEXTS[:4])]
    remote = MemoryStore(configure(embedding_model="ollama.nomic-embed-text", max_retries=0))

    def crash_after_first_batch(p: Progress) -> None:
        if p.done == 2:
            nomic.fail_next(500, {"error": "llama runner process has terminated"})

    with pytest.raises(SynapseError, match="terminated"):
        await reembed(remote, batch=2, on_progress=crash_after_first_batch)
    assert status(remote).done == 2
    done = await reembed(remote, batch=2)
    assert done.finished and vector_rows(remote) == sorted((i, NOMIC) for i in ids)
