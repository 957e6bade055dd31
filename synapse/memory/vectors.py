"""Exact vector search over one agent scope's memories, held in memory as a numpy matrix.

Why not sqlite-vec: measured in one run on this project's machine (bench/RESULTS.md), an
exact top-5 in a sqlite-vec `vec0` table took 19.0 ms at 10k and 151 ms at 100k vectors
(384 dims); this matrix takes 0.9 ms and 17 ms. The vectors stay in the database (portable
float32 blobs in `memory_vectors`, the same on PostgreSQL) and each process keeps a
matrix per (database, embedding model, agent scope):

* writes made by this process update the matrix in place (append, swap-remove);
* every write bumps `memory_scopes.version` in its transaction, so a reader that sees a
  version it did not make reloads the scope once (another process wrote);
* vectors are L2-normalised when stored, so cosine similarity is one dot product.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["ScopeMatrix", "VectorCache", "cache", "normalise", "pack", "unpack"]

#: Matrices kept per process; the least recently used goes first.
MAX_SCOPES = 64


def normalise(vector: Sequence[float]) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def pack(vector: np.ndarray) -> bytes:
    """float32 little-endian bytes (what `memory_vectors.vector` holds)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def unpack(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


@dataclass
class ScopeMatrix:
    """The vectors of one agent scope in one embedding model, with the version they reflect."""

    version: int
    dim: int = 0
    n: int = 0
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    rows: dict[int, int] = field(default_factory=dict)

    @classmethod
    def build(cls, version: int, items: Iterable[tuple[int, bytes]]) -> "ScopeMatrix":
        pairs = list(items)
        m = cls(version)
        if not pairs:
            return m
        dims = {len(blob) // 4 for _, blob in pairs}
        dim = max(dims, key=lambda d: sum(1 for _, b in pairs if len(b) // 4 == d))
        pairs = [(i, b) for i, b in pairs if len(b) // 4 == dim]  # one model, one size; skip strays
        m.dim, m.n = dim, len(pairs)
        capacity = m.n + max(64, m.n // 8)  # room for the writes that follow without a copy
        m.ids = np.zeros(capacity, dtype=np.int64)
        m.ids[: m.n] = np.fromiter((i for i, _ in pairs), dtype=np.int64, count=m.n)
        m.matrix = np.zeros((capacity, dim), dtype=np.float32)
        m.matrix[: m.n] = np.frombuffer(b"".join(b for _, b in pairs), dtype="<f4").reshape(m.n, dim)
        m.rows = {int(i): r for r, i in enumerate(m.ids[: m.n])}
        return m

    def put(self, memory_id: int, vector: np.ndarray) -> None:
        if self.dim == 0:
            self.dim = int(vector.shape[0])
            self.matrix = np.zeros((0, self.dim), dtype=np.float32)
        if vector.shape[0] != self.dim:
            return  # a vector of another size cannot be compared with these
        row = self.rows.get(memory_id)
        if row is not None:
            self.matrix[row] = vector
            return
        if self.n == self.matrix.shape[0]:  # grow by half: appends stay O(1) amortised
            capacity = max(64, self.n + self.n // 2)
            grown = np.zeros((capacity, self.dim), dtype=np.float32)
            grown[: self.n] = self.matrix[: self.n]
            ids = np.zeros(capacity, dtype=np.int64)
            ids[: self.n] = self.ids[: self.n]
            self.matrix, self.ids = grown, ids
        self.matrix[self.n] = vector
        self.ids[self.n] = memory_id
        self.rows[memory_id] = self.n
        self.n += 1

    def drop(self, memory_id: int) -> None:
        row = self.rows.pop(memory_id, None)
        if row is None:
            return
        last = self.n - 1
        if row != last:  # move the last row into the hole
            self.matrix[row] = self.matrix[last]
            moved = int(self.ids[last])
            self.ids[row] = moved
            self.rows[moved] = row
        self.n = last

    def search(self, query: np.ndarray, limit: int) -> list[tuple[int, float]]:
        """(memory id, cosine similarity) of the `limit` nearest, best first."""
        if self.n == 0 or limit <= 0 or query.shape[0] != self.dim:
            return []
        # einsum runs numpy's own single-threaded SIMD loop. `@` goes to multi-threaded BLAS,
        # which on a busy machine (the embedding model wants the same cores) was 8x slower
        # at the median: 7.5 vs 0.9 ms at 10k vectors (bench/RESULTS.md).
        sims = np.einsum("ij,j->i", self.matrix[: self.n], query)
        if limit < self.n:
            top = np.argpartition(-sims, limit - 1)[:limit]
            top = top[np.argsort(-sims[top], kind="stable")]
        else:
            top = np.argsort(-sims, kind="stable")
        return [(int(self.ids[i]), float(sims[i])) for i in top]


class VectorCache:
    """Scope matrices of this process, by (database url, model, agent)."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, str, str], ScopeMatrix] = OrderedDict()
        self._lock = threading.Lock()

    def matrix(self, conn: "sa.Connection", url: str, model: str, agent: str, version: int) -> ScopeMatrix:
        """The scope's matrix at `version`, loaded from the database when this process
        has none or an older one."""
        key = (url, model, agent)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.version == version:
                self._entries.move_to_end(key)
                return entry
        entry = ScopeMatrix.build(version, _load(conn, model, agent))
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_SCOPES:
                self._entries.popitem(last=False)
        return entry

    def changed(self, url: str, agent: str, version: int, puts: Sequence[tuple[int, str, np.ndarray]] = (),
                drops: Sequence[int] = ()) -> None:
        """This process committed a write that moved `agent` to `version`.

        A matrix that was at `version - 1` takes the change and stays current; any other
        (of a model not written, or behind) reloads on its next use.
        """
        with self._lock:
            for (u, model, a), entry in list(self._entries.items()):
                if u != url or a != agent:
                    continue
                if entry.version != version - 1:
                    del self._entries[(u, model, a)]
                    continue
                for memory_id in drops:
                    entry.drop(memory_id)
                for memory_id, vec_model, vector in puts:
                    if vec_model == model:
                        entry.put(memory_id, vector)
                entry.version = version

    def search(self, entry: ScopeMatrix, query: np.ndarray, limit: int,
               also: Sequence[int] = ()) -> tuple[list[tuple[int, float]], dict[int, float]]:
        """`entry.search`, and the similarity of the memories `also` names, safe against
        writes of other threads."""
        with self._lock:
            near = entry.search(query, limit)
            sims: dict[int, float] = {}
            if query.shape[0] == entry.dim:
                for mid in also:
                    row = entry.rows.get(mid)
                    if row is not None:
                        sims[mid] = float(entry.matrix[row] @ query)
        return near, sims

    def invalidate(self, url: str, agent: str | None = None) -> None:
        """Forget the matrices of `agent` (None: every scope) in this database."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == url and (agent is None or k[2] == agent)]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _load(conn: "sa.Connection", model: str, agent: str) -> list[tuple[int, bytes]]:
    import sqlalchemy as sa

    from ..storage.tables import memories as m, memory_vectors as v

    rows = conn.execute(
        sa.select(v.c.memory_id, v.c.vector).join(m, m.c.id == v.c.memory_id)
        .where(v.c.model == model, m.c.agent == agent)
    )
    return [(int(r[0]), bytes(r[1])) for r in rows]


#: The process-wide cache.
cache = VectorCache()
