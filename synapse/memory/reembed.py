"""Re-embedding memories after `embedding_model` changes: resumable, interruptible, with progress.

The database is the whole state: a memory is done when it has a vector under the
configured model's key. Each batch is embedded, then written in one transaction, so
stopping at any point (Ctrl+C, a failed call, a crash) loses nothing and the next run
starts from the first memory still missing a vector; the (memory, model) primary key
means nothing is ever stored twice. Until a scope is fully covered, recall keeps
searching it with the old vectors (recall.py); once it is, the old vectors of that scope
are deleted, so spaces never mix and the file does not keep two copies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from . import sql
from .embedding import configured_model, embed_documents, model_key
from .store import MemoryStore, _put_vector, check_agent
from .vectors import cache

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ..client import CallContext

__all__ = ["Progress", "reembed", "status"]

#: Memories embedded per call (and per transaction).
BATCH = 32


@dataclass(slots=True)
class Progress:
    """How far the configured model's vectors cover the memories (of `agent`, or all)."""

    model: str
    done: int
    total: int
    agent: str | None = None
    #: Old-model vectors deleted once the scope was covered.
    pruned: int = 0
    finished: bool = False

    @property
    def fraction(self) -> float:
        return 1.0 if self.total == 0 else self.done / self.total

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": round(self.fraction, 4)}


def _counts(conn: "sa.Connection", key: str, agent: str | None) -> tuple[int, int]:
    """(memories with a vector under `key`, memories) of the scope, or of all."""
    import sqlalchemy as sa

    from ..storage.tables import memories as m, memory_vectors as v

    total_q = sa.select(sa.func.count()).select_from(m)
    done_q = sa.select(sa.func.count()).select_from(v.join(m, m.c.id == v.c.memory_id)).where(v.c.model == key)
    if agent is not None:
        total_q, done_q = total_q.where(m.c.agent == agent), done_q.where(m.c.agent == agent)
    return int(conn.execute(done_q).scalar_one()), int(conn.execute(total_q).scalar_one())


def status(store: MemoryStore, agent: str | None = None) -> Progress:
    """Progress of the configured model over the memories, without changing anything."""
    agent = check_agent(agent) if agent is not None else None
    key = model_key(store.settings)
    done, total = _count(store, key, agent)
    return Progress(key, done, total, agent, finished=done >= total)


def _missing(store: MemoryStore, key: str, agent: str | None, after: int, limit: int) -> list[tuple[int, str, str]]:
    """(id, agent, text) of memories with no vector under `key`, in id order after `after`."""
    import sqlalchemy as sa

    from ..storage.tables import memories as m, memory_vectors as v

    has = sa.select(v.c.memory_id).where(v.c.memory_id == m.c.id, v.c.model == key).exists()
    query = sa.select(m.c.id, m.c.agent, m.c.text).where(~has, m.c.id > after).order_by(m.c.id).limit(limit)
    if agent is not None:
        query = query.where(m.c.agent == agent)
    with store.engine.connect() as conn:
        return [(int(i), str(a), str(t)) for i, a, t in conn.execute(query)]


def _write(store: MemoryStore, key: str, batch: list[tuple[int, str, str]], vectors: list[Any]) -> int:
    """Store one batch's vectors; skips memories deleted or edited meanwhile. How many stored."""
    import sqlalchemy as sa

    from ..storage.tables import memories as m

    by_scope: dict[str, list[tuple[int, str, Any]]] = {}
    for (mid, agent, text), vector in zip(batch, vectors):
        by_scope.setdefault(agent, []).append((mid, text, vector))
    stored = 0
    versions: dict[str, int] = {}
    puts: dict[str, list[tuple[int, str, Any]]] = {}
    with store.engine.begin() as conn:
        for agent, items in by_scope.items():
            versions[agent] = sql.bump_version(conn, agent)
            current = dict(conn.execute(sa.select(m.c.id, m.c.text).where(m.c.id.in_([i for i, _, _ in items]))).all())
            for mid, text, vector in items:
                if current.get(mid) != text:
                    continue  # deleted, or edited (the edit embedded the new text itself)
                _put_vector(conn, mid, key, vector)
                puts.setdefault(agent, []).append((mid, key, vector))
                stored += 1
    for agent, version in versions.items():
        cache.changed(store.url, agent, version, puts=puts.get(agent, []))
    return stored


def _prune(store: MemoryStore, key: str, agent: str | None) -> int:
    """Delete the vectors of other models in every scope the configured model now covers."""
    import sqlalchemy as sa

    from ..storage.tables import memories as m, memory_vectors as v

    pruned = 0
    touched: list[str] = []
    with store.engine.begin() as conn:
        scopes = [agent] if agent is not None else [a for (a,) in conn.execute(sa.select(m.c.agent).distinct())]
        for scope in scopes:
            done, total = _counts(conn, key, scope)
            ids = sa.select(m.c.id).where(m.c.agent == scope).scalar_subquery()
            stale = sa.select(sa.func.count()).select_from(v).where(v.c.model != key, v.c.memory_id.in_(ids))
            if done < total or not conn.execute(stale).scalar_one():
                continue  # not covered yet (recall still needs the old vectors), or nothing to prune
            sql.bump_version(conn, scope)
            pruned += int(conn.execute(sa.delete(v).where(v.c.model != key, v.c.memory_id.in_(ids))).rowcount or 0)
            touched.append(scope)
    for scope in touched:
        cache.invalidate(store.url, scope)
    return pruned


def _count(store: MemoryStore, key: str, agent: str | None) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return _counts(conn, key, agent)


async def reembed(
    store: MemoryStore,
    agent: str | None = None,
    *,
    batch: int = BATCH,
    on_progress: Callable[[Progress], None] | None = None,
    context: "CallContext | None" = None,
) -> Progress:
    """Embed every memory (of `agent`, or all) that has no vector in the configured model.

    `on_progress` is called after each stored batch. A failed embedding call raises (the
    batches before it are kept); cancelling between batches loses nothing. Run it again
    to continue. When every memory is covered, old-model vectors are pruned.
    """
    agent = check_agent(agent) if agent is not None else None
    key, model = model_key(store.settings), configured_model(store.settings)
    done, total = await asyncio.to_thread(_count, store, key, agent)
    progress = Progress(key, done, total, agent)
    if on_progress is not None:
        on_progress(progress)
    after = 0
    while True:
        todo = await asyncio.to_thread(_missing, store, key, agent, after, max(1, batch))
        if not todo:
            break
        vectors = await embed_documents(store.settings, [t for _, _, t in todo], context, model=model)
        await asyncio.to_thread(_write, store, key, todo, vectors)
        after = todo[-1][0]
        progress.done, progress.total = await asyncio.to_thread(_count, store, key, agent)
        if on_progress is not None:
            on_progress(progress)
    progress.pruned = await asyncio.to_thread(_prune, store, key, agent)
    progress.done, progress.total = await asyncio.to_thread(_count, store, key, agent)
    progress.finished = progress.done >= progress.total
    if on_progress is not None:
        on_progress(progress)
    return progress
