"""The memory store: memories of each agent scope, their vectors, and every change to them.

Writes embed first (through `client.aembed`, outside any transaction), then change the
database in one short transaction that starts by bumping the scope's version (see
vectors.py) and records the change in `memory_history` with the text before and after.

Deleting comes in two strengths:

* `delete(..., hard=False)`: what a model does (extraction, the `forget` tool). The
  memory and its vectors go, the history keeps its text, and `restore` brings it back.
* `delete(..., hard=True)` and `forget_all`: what a person does. The memory, its vectors
  and its whole history go, and the freed bytes are overwritten (sql.py), so the text is
  gone from the database file, not just hidden.

An embedding model that fails does not lose a memory: it is stored without a vector
(keyword search still finds it) and `synapse memory reembed` fills the gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import SynapseError
from . import sql
from .embedding import embed_documents, model_key
from .records import SHARED, HistoryEntry, Memory, MemoryStoreError, MemoryNotFound, check_text
from .vectors import cache, pack

if TYPE_CHECKING:
    import numpy as np
    import sqlalchemy as sa

    from ..client import CallContext

__all__ = ["MemoryStore", "check_agent", "resolve_agent"]

log = logging.getLogger("synapse.memory")

#: Where a memory came from (memories.source) and who changed it (memory_history.actor).
SOURCES = frozenset({"manual", "remember", "extract", "import", "restore", "memory_tool"})


def check_agent(agent: object) -> str:
    """An agent scope: an agent id, or "*" (shared by every agent)."""
    if not isinstance(agent, str) or not agent.strip():
        raise MemoryStoreError("name an agent (its id or name), or '*' for the memories every agent shares")
    agent = agent.strip()
    if len(agent) > 64:
        raise MemoryStoreError(f"an agent scope is at most 64 characters, not {len(agent)}")
    return agent


class MemoryStore:
    """Memories in the database of `settings` (default: the current settings)."""

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        if settings is None:
            from .. import settings as settings_mod

            settings = settings_mod.load()
        self.settings = settings

    @property
    def engine(self) -> "sa.Engine":
        from .. import storage

        return storage.engine(settings=self.settings)

    @property
    def url(self) -> str:
        from .. import storage

        return storage.database_url(self.settings)

    # --- reading ------------------------------------------------------------------------------

    def get(self, memory_id: int, *, agent: str | None = None) -> Memory:
        """One memory (with the models it is embedded in); `agent` checks it belongs there."""
        got = self.get_many([memory_id], with_models=True)
        memory = got.get(int(memory_id))
        if memory is None or (agent is not None and memory.agent != agent):
            where = f" of agent {agent!r}" if agent is not None else ""
            raise MemoryNotFound(f"no memory {memory_id}{where}: `synapse memory list` shows the ids")
        return memory

    def get_many(self, ids: Iterable[int], *, with_models: bool = False) -> dict[int, Memory]:
        import sqlalchemy as sa

        from ..storage.tables import memories as t, memory_vectors as v

        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            out = {r.id: _memory(r) for r in conn.execute(sa.select(t).where(t.c.id.in_(wanted)))}
            if with_models and out:
                for mid, model in conn.execute(sa.select(v.c.memory_id, v.c.model).where(v.c.memory_id.in_(list(out)))):
                    out[mid].embedded_with.append(model)
        return out

    def memories(self, agent: str, *, include_shared: bool = False, limit: int = 100, offset: int = 0) -> list[Memory]:
        """The scope's memories, most recently changed first."""
        import sqlalchemy as sa

        from ..storage.tables import memories as t

        scopes = _scopes(check_agent(agent), include_shared)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t).where(t.c.agent.in_(scopes)).order_by(t.c.updated_at.desc(), t.c.id.desc())
                .limit(max(0, int(limit))).offset(max(0, int(offset)))
            )
            return [_memory(r) for r in rows]

    def count(self, agent: str | None = None) -> int:
        import sqlalchemy as sa

        from ..storage.tables import memories as t

        query = sa.select(sa.func.count()).select_from(t)
        if agent is not None:
            query = query.where(t.c.agent == agent)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def scopes(self) -> list[dict[str, Any]]:
        """Every agent scope that has memories, with how many."""
        import sqlalchemy as sa

        from ..storage.tables import memories as t

        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.agent, sa.func.count()).group_by(t.c.agent).order_by(t.c.agent))
            return [{"agent": a, "count": int(n)} for a, n in rows]

    def history(self, *, memory_id: int | None = None, agent: str | None = None, limit: int = 100) -> list[HistoryEntry]:
        """Changes, newest first: of one memory, or of one scope."""
        import sqlalchemy as sa

        from ..storage.tables import memory_history as h

        query = sa.select(h).order_by(h.c.id.desc()).limit(max(0, int(limit)))
        if memory_id is not None:
            query = query.where(h.c.memory_id == int(memory_id))
        if agent is not None:
            query = query.where(h.c.agent == agent)
        with self.engine.connect() as conn:
            return [HistoryEntry(**dict(r._mapping)) for r in conn.execute(query)]

    # --- writing ------------------------------------------------------------------------------

    async def add(
        self,
        agent: str,
        text: str,
        *,
        source: str = "manual",
        session_id: str | None = None,
        turn: int | None = None,
        context: "CallContext | None" = None,
    ) -> Memory:
        """Store one memory. The same text already in the scope is returned, not stored twice."""
        stored = await self.insert(agent, [text], source=source, session_id=session_id, turn=turn, context=context)
        return stored[0][0]

    async def insert(
        self,
        agent: str,
        texts: Sequence[str],
        *,
        source: str = "manual",
        session_id: str | None = None,
        turn: int | None = None,
        context: "CallContext | None" = None,
    ) -> list[tuple[Memory, bool]]:
        """Store several memories with one embedding call: (memory, stored now) per text, in
        order. A text the scope already holds gives the existing memory and False."""
        agent = check_agent(agent)
        _check_source(source)
        clean = [check_text(t) for t in texts]
        existing = await asyncio.to_thread(self._find_texts, agent, clean)
        fresh: dict[str, str] = {}  # normalised -> text, each new text once
        for text in clean:
            if _norm(text) not in existing:
                fresh.setdefault(_norm(text), text)
        key, vectors = await self._embed(list(fresh.values()), context)
        return await asyncio.to_thread(self._insert_rows, agent, clean, existing, list(fresh.values()), key, vectors,
                                       source, session_id, turn)

    def _insert_rows(self, agent: str, clean: list[str], existing: dict[str, int], fresh: list[str], key: str,
                     vectors: list["np.ndarray"], source: str, session_id: str | None,
                     turn: int | None) -> list[tuple[Memory, bool]]:
        import sqlalchemy as sa

        from ..storage.tables import memories as t

        had = set(existing)
        now = time.time()
        puts: list[tuple[int, str, "np.ndarray"]] = []
        if not fresh:  # all there already: nothing to write
            by_id = self.get_many(existing.values(), with_models=True)
            return [(by_id[existing[_norm(text)]], False) for text in clean]
        with self.engine.begin() as conn:
            version = sql.bump_version(conn, agent)  # the scope's write lock: writers of it queue here
            meanwhile = _find_in(conn, agent, fresh)  # stored by another writer since the first look
            existing.update(meanwhile)
            had.update(meanwhile)
            for i, text in enumerate(fresh):
                if _norm(text) in meanwhile:
                    continue
                mid = int(conn.execute(sa.insert(t).values(
                    agent=agent, text=text, fingerprint=fingerprint(text), source=source, session_id=session_id,
                    turn=turn, created_at=now, updated_at=now, recall_count=0,
                ).returning(t.c.id)).scalar_one())
                _log(conn, mid, agent, "add", None, text, source, session_id, now)
                if vectors:
                    _put_vector(conn, mid, key, vectors[i])
                    puts.append((mid, key, vectors[i]))
                existing[_norm(text)] = mid
        cache.changed(self.url, agent, version, puts=puts)
        by_id = self.get_many(existing.values(), with_models=True)
        out: list[tuple[Memory, bool]] = []
        reported: set[str] = set()
        for text in clean:
            norm = _norm(text)
            out.append((by_id[existing[norm]], norm not in had and norm not in reported))
            reported.add(norm)
        return out

    async def update(
        self,
        memory_id: int,
        text: str,
        *,
        actor: str = "manual",
        agent: str | None = None,
        session_id: str | None = None,
        context: "CallContext | None" = None,
    ) -> Memory:
        """Replace a memory's text; the old text stays in its history."""
        return await self._replace(memory_id, check_text(text), "update", actor, agent, session_id, context)

    async def _replace(self, memory_id: int, text: str, op: str, actor: str, agent: str | None,
                       session_id: str | None, context: "CallContext | None") -> Memory:
        old = await asyncio.to_thread(self.get, memory_id, agent=agent)
        if old.text == text:
            return old
        key, vectors = await self._embed([text], context)
        return await asyncio.to_thread(self._replace_row, old, text, op, actor, session_id, key, vectors)

    def _replace_row(self, old: Memory, text: str, op: str, actor: str, session_id: str | None, key: str,
                     vectors: list["np.ndarray"]) -> Memory:
        import sqlalchemy as sa

        from ..storage.tables import memories as t, memory_vectors as v

        now = time.time()
        with self.engine.begin() as conn:
            version = sql.bump_version(conn, old.agent)
            current = conn.execute(sa.select(t.c.text).where(t.c.id == old.id)).scalar()
            if current is None:
                raise MemoryNotFound(f"memory {old.id} was deleted meanwhile")
            conn.execute(sa.update(t).where(t.c.id == old.id).values(text=text, fingerprint=fingerprint(text),
                                                                     updated_at=now))
            conn.execute(sa.delete(v).where(v.c.memory_id == old.id))
            _log(conn, old.id, old.agent, op, current, text, actor, session_id, now)
            if vectors:
                _put_vector(conn, old.id, key, vectors[0])
        cache.changed(self.url, old.agent, version, puts=[(old.id, key, vectors[0])] if vectors else [],
                      drops=[old.id])
        return self.get(old.id)

    async def delete(
        self,
        memory_id: int,
        *,
        hard: bool = True,
        actor: str = "manual",
        agent: str | None = None,
        session_id: str | None = None,
    ) -> Memory:
        """Delete a memory. `hard` (a person's delete): its history goes too and the bytes
        are overwritten. Not hard (a model's delete): the history keeps the text to restore."""
        return await asyncio.to_thread(self._delete_row, memory_id, hard, actor, agent, session_id)

    def _delete_row(self, memory_id: int, hard: bool, actor: str, agent: str | None, session_id: str | None) -> Memory:
        import sqlalchemy as sa

        from ..storage.tables import memories as t, memory_history as h, memory_vectors as v

        old = self.get(memory_id, agent=agent)
        now = time.time()
        with self.engine.begin() as conn:
            version = sql.bump_version(conn, old.agent)
            if hard:
                sql.secure_delete(conn)
            current = conn.execute(sa.select(t.c.text).where(t.c.id == old.id)).scalar()
            conn.execute(sa.delete(v).where(v.c.memory_id == old.id))
            conn.execute(sa.delete(t).where(t.c.id == old.id))
            if hard:
                conn.execute(sa.delete(h).where(h.c.memory_id == old.id))
                sql.scrub_after_delete(conn)
            elif current is not None:
                _log(conn, old.id, old.agent, "delete", current, None, actor, session_id, now)
        cache.changed(self.url, old.agent, version, drops=[old.id])
        if hard:
            sql.checkpoint(self.engine)
        return old

    def forget_all(self, agent: str) -> int:
        """Hard-delete every memory of the scope and its whole history; how many went."""
        import sqlalchemy as sa

        from ..storage.tables import memories as t, memory_history as h, memory_vectors as v

        agent = check_agent(agent)
        with self.engine.begin() as conn:
            version = sql.bump_version(conn, agent)
            sql.secure_delete(conn)
            ids = sa.select(t.c.id).where(t.c.agent == agent).scalar_subquery()
            conn.execute(sa.delete(v).where(v.c.memory_id.in_(ids)))
            gone = conn.execute(sa.delete(t).where(t.c.agent == agent)).rowcount
            conn.execute(sa.delete(h).where(h.c.agent == agent))
            sql.scrub_after_delete(conn)
        cache.invalidate(self.url, agent)
        sql.checkpoint(self.engine)
        return int(gone or 0)

    async def restore(self, history_id: int, *, actor: str = "manual", context: "CallContext | None" = None) -> Memory:
        """Bring back the text a change replaced or deleted (under the same id)."""
        entry = await asyncio.to_thread(self.history_entry, history_id)
        if entry.old_text is None:
            raise MemoryStoreError(f"history entry {history_id} added the memory: there is no earlier text to restore")
        if await asyncio.to_thread(self.get_many, [entry.memory_id]):
            return await self._replace(entry.memory_id, entry.old_text, "restore", actor, None, None, context)
        key, vectors = await self._embed([entry.old_text], context)
        return await asyncio.to_thread(self._restore_row, entry, entry.old_text, actor, key, vectors)

    def history_entry(self, history_id: int) -> HistoryEntry:
        """One change by its id."""
        import sqlalchemy as sa

        from ..storage.tables import memory_history as h

        with self.engine.connect() as conn:
            row = conn.execute(sa.select(h).where(h.c.id == int(history_id))).first()
        if row is None:
            raise MemoryStoreError(f"no history entry {history_id}: `synapse memory history` lists them")
        return HistoryEntry(**dict(row._mapping))

    def _restore_row(self, entry: HistoryEntry, text: str, actor: str, key: str, vectors: list["np.ndarray"]) -> Memory:
        import sqlalchemy as sa

        from ..storage.tables import memories as t

        now = time.time()
        with self.engine.begin() as conn:
            version = sql.bump_version(conn, entry.agent)
            conn.execute(sa.insert(t).values(
                id=entry.memory_id, agent=entry.agent, text=text, fingerprint=fingerprint(text),
                source="restore", session_id=entry.session_id, created_at=now, updated_at=now, recall_count=0,
            ))
            _log(conn, entry.memory_id, entry.agent, "restore", None, text, actor, None, now)
            if vectors:
                _put_vector(conn, entry.memory_id, key, vectors[0])
        cache.changed(self.url, entry.agent, version, puts=[(entry.memory_id, key, vectors[0])] if vectors else [])
        return self.get(entry.memory_id)

    def mark_recalled(self, ids: Sequence[int]) -> None:
        """Count a recall (before a turn) for these memories. Vectors are untouched, so the
        scope's version is too."""
        if not ids:
            return
        import sqlalchemy as sa

        from ..storage.tables import memories as t

        with self.engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.id.in_([int(i) for i in ids])).values(
                last_recalled_at=time.time(), recall_count=t.c.recall_count + 1))

    # --- export / import ------------------------------------------------------------------------

    def export(self, agent: str) -> list[dict[str, Any]]:
        """The scope's memories as plain JSON-able dicts (no vectors: any model re-embeds them)."""
        out = []
        for m in reversed(self.memories(agent, limit=10**9)):
            d = m.as_dict()
            d.pop("embedded_with", None)
            out.append(d)
        return out

    async def import_(self, agent: str, items: Iterable[Any], context: "CallContext | None" = None) -> tuple[int, int]:
        """Add memories from `export` dicts or plain strings; (added, already there)."""
        texts: list[str] = []
        for n, item in enumerate(items, 1):
            text = item.get("text") if isinstance(item, Mapping) else item
            if not isinstance(text, str) or not text.strip():
                raise MemoryStoreError(f"item {n} has no text: give strings or objects with a \"text\" field")
            texts.append(check_text(text))
        stored = await self.insert(agent, texts, source="import", context=context)
        added = sum(1 for _, new in stored if new)
        return added, len(texts) - added

    # --- internals ---------------------------------------------------------------------------------

    async def _embed(self, texts: Sequence[str], context: "CallContext | None") -> tuple[str, list["np.ndarray"]]:
        key = model_key(self.settings)
        if not texts:
            return key, []
        try:
            return key, await embed_documents(self.settings, texts, context)
        except SynapseError as exc:  # keep the memory; keyword search finds it, reembed fills the vector
            log.warning("memory stored without an embedding (%s): run `synapse memory reembed`", exc)
            return key, []

    def _find_texts(self, agent: str, texts: Sequence[str]) -> dict[str, int]:
        """normalised text -> id of the scope's memories with one of these texts."""
        if not texts:
            return {}
        with self.engine.connect() as conn:
            return _find_in(conn, agent, texts)


def resolve_agent(ref: object, settings: Mapping[str, Any] | None = None) -> str:
    """The scope a person means by `ref`: "*" for the shared scope, else the stored agent
    with that id or name (case-insensitive); MemoryNotFound lists the known agents."""
    ref = check_agent(ref)
    if ref == SHARED:
        return SHARED
    from ..agents.store import AgentStore

    agents = AgentStore(settings)
    spec = agents.find(ref)
    if spec is None:
        known = ", ".join(a.name for a in agents.list()) or "none"
        raise MemoryNotFound(f"no agent {ref!r} (known agents: {known}); '*' is the scope every agent shares")
    return str(spec.id)


def _find_in(conn: "sa.Connection", agent: str, texts: Sequence[str]) -> dict[str, int]:
    import sqlalchemy as sa

    from ..storage.tables import memories as t

    prints = {fingerprint(x): _norm(x) for x in texts}
    if not prints:
        return {}
    rows = conn.execute(sa.select(t.c.id, t.c.fingerprint).where(
        t.c.agent == agent, t.c.fingerprint.in_(list(prints))).order_by(t.c.id))
    found: dict[str, int] = {}
    for mid, fp in rows:
        found.setdefault(prints[fp], int(mid))
    return found


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def fingerprint(text: str) -> str:
    """What makes two memory texts the same: case and spacing aside."""
    import hashlib

    return hashlib.sha1(_norm(text).encode("utf-8")).hexdigest()


def _scopes(agent: str, include_shared: bool) -> list[str]:
    return [agent, SHARED] if include_shared and agent != SHARED else [agent]


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise MemoryStoreError(f"unknown memory source {source!r}: one of {', '.join(sorted(SOURCES))}")


def _memory(row: Any) -> Memory:
    return Memory(
        id=int(row.id), agent=row.agent, text=row.text, source=row.source, session_id=row.session_id,
        turn=row.turn, created_at=float(row.created_at), updated_at=float(row.updated_at),
        last_recalled_at=row.last_recalled_at, recall_count=int(row.recall_count or 0),
    )


def _put_vector(conn: "sa.Connection", memory_id: int, model: str, vector: "np.ndarray") -> None:
    import sqlalchemy as sa

    from ..storage.tables import memory_vectors as v

    conn.execute(sa.delete(v).where(v.c.memory_id == memory_id, v.c.model == model))
    conn.execute(sa.insert(v).values(memory_id=memory_id, model=model, dim=int(vector.shape[0]), vector=pack(vector)))


def _log(conn: "sa.Connection", memory_id: int, agent: str, op: str, old: str | None, new: str | None,
         actor: str, session_id: str | None, now: float) -> None:
    import sqlalchemy as sa

    from ..storage.tables import memory_history as h

    conn.execute(sa.insert(h).values(memory_id=memory_id, agent=agent, op=op, old_text=old, new_text=new,
                                     actor=actor, session_id=session_id, created_at=now))
