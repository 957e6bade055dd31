"""Long-term memory: how good recall is, and how fast.

    .venv/bin/python bench/bench_memory.py quality          recall@5 on bench/data/memory_recall.json
    .venv/bin/python bench/bench_memory.py speed [N ...]    time per recall at N memories (default 1000 10000 100000)

quality: each conversation's turns become one agent's memories (bundled local model);
every question is searched with k=5 and no threshold, by words alone (BM25), by meaning
alone, by meaning with the question embedded as a passage (no query mode), and hybrid
(the default). Prints recall@1/@5 and MRR@5 per method, the hybrid/BM25 ratio, and the
similarity distributions the threshold in synapse/memory/recall.py is calibrated from.

speed: N memories of generated text with random unit vectors (search cost does not
depend on the values; embedding 100k texts would take most of an hour here), then
`recall()` for real questions, local query embedding included. The query embedding
alone is the baseline measured in the same run. Before and after, the query embedding
with one engine thread against all of them (what embeddings_local.py chooses between). With `pysqlite3` and `sqlite-vec`
installed (not dependencies of Synapse), also times an exact top-5 in a sqlite-vec
`vec0` table over the same vectors, the alternative vectors.py explains it did not take.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
DATA = HERE / "data" / "memory_recall.json"
K = 5


def _fresh_dir() -> None:
    os.environ["SYNAPSE_DATA_DIR"] = tempfile.mkdtemp(prefix="synapse-bench-memory-")
    from synapse import settings

    settings._cache.clear()


# --- quality ------------------------------------------------------------------------------------


async def quality() -> dict[str, Any]:
    import numpy as np

    from synapse.memory import MemoryStore
    from synapse.memory.embedding import embed_documents, model_key
    from synapse.memory.recall import search
    from synapse.memory.vectors import ScopeMatrix, cache

    data = json.loads(DATA.read_text(encoding="utf-8"))
    _fresh_dir()
    store = MemoryStore()
    ids: dict[str, int] = {}
    for conv in data["conversations"]:
        turns = [t for s in conv["sessions"] for t in s["turns"]]
        stored = await store.insert(conv["id"], [t["text"] for t in turns])
        ids.update({t["id"]: m.id for t, (m, _) in zip(turns, stored)})
    key = model_key(store.settings)

    async def passage_search(agent: str, question: str) -> list[int]:
        """Meaning alone, with the question embedded the way memories are (no query mode)."""
        q = (await embed_documents(store.settings, [question]))[0]
        with store.engine.connect() as conn:
            matrix: ScopeMatrix = cache.matrix(conn, store.url, key, agent, _version(store, agent))
        return [mid for mid, _ in matrix.search(q, K)]

    methods = ("keyword", "vector", "vector_as_passage", "hybrid")
    ranks: dict[str, list[int | None]] = {m: [] for m in methods}
    positives: list[float] = []
    best_negative: list[float] = []
    for q in data["questions"]:
        want = {ids[a] for a in q["answers"]}
        for method in methods:
            if method == "vector_as_passage":
                got = await passage_search(q["conversation"], q["question"])
            else:
                hits = await search(store, q["conversation"], q["question"], k=K, mode=method, threshold=None,
                                    include_shared=False)
                got = [h.memory.id for h in hits]
            rank = next((i for i, mid in enumerate(got, 1) if mid in want), None)
            ranks[method].append(rank)
        every = await search(store, q["conversation"], q["question"], k=200, mode="vector", threshold=None,
                             include_shared=False)
        positives += [h.similarity or 0.0 for h in every if h.memory.id in want]
        best_negative.append(max((h.similarity or 0.0) for h in every if h.memory.id not in want))
    unrelated_top = []
    for question in data["unrelated"]:
        top = []
        for conv in data["conversations"]:
            hits = await search(store, conv["id"], question, k=1, mode="vector", threshold=None, include_shared=False)
            top.append(hits[0].similarity or 0.0)
        unrelated_top.append(max(top))
    # the default: hybrid with the calibrated threshold
    calibrated = []
    for q in data["questions"]:
        want = {ids[a] for a in q["answers"]}
        hits = await search(store, q["conversation"], q["question"], k=K, include_shared=False)
        calibrated.append(any(h.memory.id in want for h in hits))
    unrelated_empty = 0
    for question in data["unrelated"]:
        found = [await search(store, c["id"], question, k=K, include_shared=False) for c in data["conversations"]]
        unrelated_empty += not any(found)

    def summary(rs: list[int | None]) -> dict[str, float]:
        n = len(rs)
        return {
            "recall@1": sum(1 for r in rs if r == 1) / n,
            "recall@5": sum(1 for r in rs if r is not None) / n,
            "mrr@5": sum(1.0 / r for r in rs if r is not None) / n,
        }

    out = {m: summary(ranks[m]) for m in methods}
    pos = np.array(positives)
    out["threshold"] = {
        "answer_similarity_p1_p5_p50": [float(np.percentile(pos, p)) for p in (1, 5, 50)],
        "best_wrong_memory_similarity_p50_p95": [float(np.percentile(best_negative, p)) for p in (50, 95)],
        "unrelated_question_top_similarity_min_p50_max": [min(unrelated_top), statistics.median(unrelated_top),
                                                            max(unrelated_top)],
        "hybrid_default_threshold_recall@5": sum(calibrated) / len(calibrated),
        "unrelated_questions_recalling_nothing": f"{unrelated_empty}/{len(data['unrelated'])}",
    }
    out["questions"] = len(data["questions"])
    out["memories"] = len(ids)
    return out


def _version(store: Any, agent: str) -> int:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        v = conn.execute(sa.text("SELECT version FROM memory_scopes WHERE agent = :a"), {"a": agent}).scalar()
    return int(v or 0)


# --- speed ----------------------------------------------------------------------------------------

_WORDS = ("the user likes prefers lives works moved sister brother friend manager dog cat bike car train city "
          "coffee tea pasta curry running climbing swimming guitar piano book film project deadline budget "
          "meeting report client invoice doctor dentist school garden kitchen holiday Lisbon Oslo Kyoto Denver "
          "Monday Friday March October morning evening red blue green allergic vegetarian Python Kotlin Rust "
          "database laptop phone apartment house rent salary flight hotel wedding birthday exam course").split()


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(7, 16))).capitalize() + "."


def _fill(store: Any, n: int, dim: int, seed: int = 1) -> Any:
    import numpy as np
    import sqlalchemy as sa

    from synapse.memory import sql
    from synapse.memory.embedding import model_key
    from synapse.memory.store import fingerprint
    from synapse.memory.vectors import pack

    rng = random.Random(seed)
    gen = np.random.default_rng(seed)
    key = model_key(store.settings)
    vectors = gen.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = time.time()
    with store.engine.begin() as conn:
        sql.bump_version(conn, "bench")
        for start in range(0, n, 5000):
            rows = []
            for i in range(start, min(n, start + 5000)):
                text = f"{_text(rng)} #{i}"
                rows.append({"agent": "bench", "text": text, "fingerprint": fingerprint(text), "source": "import",
                             "created_at": now, "updated_at": now, "recall_count": 0})
            conn.execute(sa.text(
                "INSERT INTO memories (agent, text, fingerprint, source, created_at, updated_at, recall_count) "
                "VALUES (:agent, :text, :fingerprint, :source, :created_at, :updated_at, :recall_count)"), rows)
        ids = [int(r[0]) for r in conn.execute(sa.text("SELECT id FROM memories WHERE agent = 'bench' ORDER BY id"))]
        conn.execute(sa.text("INSERT INTO memory_vectors (memory_id, model, dim, vector) VALUES (:i, :m, :d, :v)"),
                     [{"i": mid, "m": key, "d": dim, "v": pack(vectors[j])} for j, mid in enumerate(ids)])
    return vectors


QUESTIONS = ["Where does my sister live these days?", "What did I say about my manager last month?",
             "Which programming language do I prefer?", "When is my flight to Kyoto?",
             "What was the budget for the kitchen project?", "Do I have any food allergies?",
             "What time is the Friday meeting with the client?", "Which city did I move to in March?"]


def _ms(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s) * 1000, s[min(len(s) - 1, int(0.95 * len(s)))] * 1000


async def speed(sizes: list[int], rounds: int = 5) -> list[dict[str, Any]]:
    from synapse.embeddings_local import LOCAL_EMBEDDING_DIM, embed_local
    from synapse.memory import MemoryStore
    from synapse.memory.recall import recall, search

    results = []
    for n in sizes:
        _fresh_dir()
        store = MemoryStore()
        t0 = time.perf_counter()
        vectors = _fill(store, n, LOCAL_EMBEDDING_DIM)
        fill_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        await search(store, "bench", "warm up", k=K)  # loads the scope's matrix once
        load_s = time.perf_counter() - t0
        embed_t, recall_t, words_t = [], [], []
        for _ in range(rounds):
            for q in QUESTIONS:
                t = time.perf_counter()
                await embed_local([q], query=True)
                embed_t.append(time.perf_counter() - t)
                t = time.perf_counter()
                await recall(store, "bench", q)
                recall_t.append(time.perf_counter() - t)
                t = time.perf_counter()
                await search(store, "bench", q, k=K, mode="keyword")
                words_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        m = await store.add("bench", "The user's new neighbour is called Brigitte.")
        add_s = time.perf_counter() - t
        t = time.perf_counter()
        await store.delete(m.id, hard=True)
        delete_s = time.perf_counter() - t
        row: dict[str, Any] = {
            "memories": n,
            "load_average": round(os.getloadavg()[0], 2),
            "recall_ms_p50_p95": _ms(recall_t),
            "query_embedding_ms_p50_p95 (baseline)": _ms(embed_t),
            "keyword_search_ms_p50": _ms(words_t)[0],
            "recall/embedding": statistics.median(recall_t) / statistics.median(embed_t),
            "first_search_load_s": load_s,
            "fill_s": fill_s,
            "add_one_ms": add_s * 1000,
            "hard_delete_ms": delete_s * 1000,
        }
        row.update(_sqlite_vec(vectors))
        results.append(row)
        print(json.dumps(row), flush=True)
    return results


def _threads(rounds: int = 6) -> dict[str, Any]:
    """The query embedding with one engine thread and with all, forced, in alternating
    blocks of the same process (synapse.embeddings_local picks by the load average)."""
    from synapse import embeddings_local as el

    el.embed_local_sync(["warm up"], query=True)
    if el._set_threads is None:
        return {}
    times: dict[int, list[float]] = {1: [], el._max_threads: []}
    for block in range(2 * rounds):
        n = 1 if block % 2 == 0 else el._max_threads
        for q in QUESTIONS:
            with el._lock:
                el._set_threads(n)
                t = time.perf_counter()
                el._model.query([q])
                times[n].append(time.perf_counter() - t)
    out = {"load_average": os.getloadavg()[0], "all_threads": el._max_threads,
           "threads_now": el.threads_for_now()}
    for n, samples in times.items():
        p50, p95 = _ms(samples)
        out[f"query_embedding_{n}_thread(s)_ms_p50_p95"] = (round(p50, 2), round(p95, 2))
    return out


def _sqlite_vec(vectors: Any) -> dict[str, Any]:
    """Exact top-5 in sqlite-vec's vec0 and in numpy over the same vectors, when sqlite-vec is installed."""
    try:
        import pysqlite3.dbapi2 as sqlite3  # type: ignore[import-not-found]
        import sqlite_vec  # type: ignore[import-not-found]
    except ImportError:
        return {}
    import numpy as np

    n, dim = vectors.shape
    conn = sqlite3.connect(os.path.join(tempfile.mkdtemp(prefix="synapse-bench-vec-"), "v.db"))
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding float[{dim}] distance_metric=cosine)")
    conn.executemany("INSERT INTO v(rowid, embedding) VALUES (?, ?)", ((i + 1, vectors[i].tobytes()) for i in range(n)))
    conn.commit()
    rng = np.random.default_rng(3)
    queries = rng.standard_normal((20, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    from synapse.memory.vectors import ScopeMatrix

    matrix = ScopeMatrix(0)
    for i in range(n):
        matrix.put(i, vectors[i])
    vec_t, blas_t, ours_t = [], [], []
    for q in queries:
        t = time.perf_counter()
        top = conn.execute("SELECT rowid FROM v WHERE embedding MATCH ? AND k = 5", (q.tobytes(),)).fetchall()
        vec_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        sims = vectors @ q
        best = np.argpartition(-sims, 5)[:5]
        best = best[np.argsort(-sims[best])]
        blas_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours = [i for i, _ in matrix.search(q, 5)]
        ours_t.append(time.perf_counter() - t)
        assert [r[0] - 1 for r in top] == best.tolist() == ours  # all exact: the same five
    conn.close()
    return {"sqlite_vec_vec0_top5_ms_p50": _ms(vec_t)[0], "numpy_matmul_blas_top5_ms_p50": _ms(blas_t)[0],
            "synapse_matrix_einsum_top5_ms_p50": _ms(ours_t)[0]}


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "quality"
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores", flush=True)
    if what == "quality":
        print(json.dumps(asyncio.run(quality()), indent=2))
    elif what == "speed":
        sizes = [int(x) for x in sys.argv[2:]] or [1000, 10000, 100000]
        print(json.dumps({"engine threads": _threads()}), flush=True)
        asyncio.run(speed(sizes))
        print(json.dumps({"engine threads (after)": _threads()}), flush=True)
    else:
        raise SystemExit("usage: bench_memory.py quality | speed [N ...]")


if __name__ == "__main__":
    main()
