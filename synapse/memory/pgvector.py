"""Nearest memories on PostgreSQL: exact search by pgvector, in the database.

On PostgreSQL `memory_vectors.vector` is pgvector's `vector` (storage/vector.py), so the
database ranks a scope's vectors itself and no instance loads a scope's matrix: N
instances hold nothing per scope, and a write of one is in the next search of every
other (it is committed; there is no copy to go stale).

Exact, not approximate: a full scan of the scope's vectors in one model, through the
(model, agent) index. Vectors are L2-normalised when stored, so the negative inner product
`<#>` ranks like cosine distance without computing two norms per row. Why no HNSW index (measured in
bench/RESULTS.md, pgvector 0.6.2): an HNSW index spans a model's vectors of every scope, and
pgvector before 0.8 filters its candidates after the index scan (`hnsw.ef_search`, 40 by
default), so a scope that is a small part of the index gets few or none of its own
memories back; exact search returns exactly what the in-process search (vectors.py) does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..storage.vector import to_text

if TYPE_CHECKING:
    import numpy as np
    import sqlalchemy as sa

__all__ = ["count", "nearest"]


def count(conn: "sa.Connection", model: str, scope: str) -> int:
    """How many memories of `scope` have a vector in `model` (an index-only count)."""
    return int(conn.exec_driver_sql(
        "SELECT count(*) FROM memory_vectors WHERE model = %(m)s AND agent = %(a)s", {"m": model, "a": scope}
    ).scalar_one())


def nearest(conn: "sa.Connection", scopes: Mapping[str, Sequence[str]], queries: Mapping[str, "np.ndarray"],
            limit: int, also: Sequence[int] = ()) -> tuple[list[tuple[int, float]], dict[int, float]]:
    """The `limit` memories nearest their query over `scopes` (model -> the scopes searched in
    it, each model with its query vector in `queries`), best first, as (id, cosine
    similarity); and the similarity of the memories `also` names. One statement."""
    parts: list[str] = []
    params: dict[str, object] = {"n": int(limit)}
    for i, (model, agents) in enumerate(scopes.items()):
        query = queries.get(model)
        if query is None or not agents:
            continue
        params.update({f"q{i}": to_text(query), f"m{i}": model, f"a{i}": list(agents), f"d{i}": int(query.shape[0])})
        where = f"model = %(m{i})s AND agent = ANY(%(a{i})s) AND dim = %(d{i})s"  # dim: another size cannot compare
        parts.append(f"(SELECT 0 AS part, memory_id, vector <#> %(q{i})s::vector AS d FROM memory_vectors "
                     f"WHERE {where} ORDER BY d LIMIT %(n)s)")
        if also:
            params["ids"] = [int(x) for x in also]
            parts.append(f"(SELECT 1, memory_id, vector <#> %(q{i})s::vector FROM memory_vectors "
                         f"WHERE {where} AND memory_id = ANY(%(ids)s))")
    if not parts or limit <= 0:
        return [], {}
    found: list[tuple[int, float]] = []
    sims: dict[int, float] = {}
    for part, mid, distance in conn.exec_driver_sql(" UNION ALL ".join(parts), params):
        pair = (int(mid), -float(distance))  # <#> is the negative inner product: cosine, negated
        if part == 0:
            found.append(pair)
        sims[pair[0]] = pair[1]
    found.sort(key=lambda p: -p[1])
    return found[:limit], sims
