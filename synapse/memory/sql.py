"""The SQL that differs by database: full-text (keyword) search and scrubbing deleted text.

Everything else in synapse/memory is SQLAlchemy Core and runs unchanged on SQLite and
PostgreSQL. Here the two part ways:

* keyword search: SQLite FTS5 `memories_fts` ranked by BM25; PostgreSQL `to_tsvector`
  over the GIN index of migration 0004, ranked by `ts_rank_cd`. The query's words are
  OR-ed (any word may match; rarer words weigh more), after dropping common English
  stop words ("user" among them: extracted memories all say "The user ..."), and words
  in more than 5% of a large index, so "where does my sister live" searches `sister OR live`.
* scrubbing: a hard delete on SQLite leaves the old bytes in free pages, in old FTS
  segments and in the write-ahead log. `scrub_after_delete` (same transaction, with
  secure_delete on) merges the FTS index, and `checkpoint` (after the commit) moves the
  log into the file and truncates it, so the text is gone from every file of the
  database. PostgreSQL's VACUUM is the server operator's business.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["bump_version", "checkpoint", "keyword_search", "keyword_terms", "scrub_after_delete", "secure_delete"]

#: At most this many words of a query go into the keyword search.
MAX_TERMS = 32

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    """a about above after again all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves im ive
    don dont ll re ve tell remind know remember please user users""".split()
)


def keyword_terms(text: str) -> list[str]:
    """The words of `text` a keyword search uses: lower-cased, no stop words, each once."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word in _STOP or len(word) == 1:
            continue
        seen.setdefault(word, None)
        if len(seen) >= MAX_TERMS:
            break
    return list(seen)


def keyword_search(conn: "sa.Connection", text: str, agents: Sequence[str], limit: int) -> list[tuple[int, float]]:
    """(memory id, score) of the memories of `agents` that share words with `text`, best first."""
    terms = keyword_terms(text)
    if not terms or not agents or limit <= 0:
        return []
    import sqlalchemy as sa

    terms = _without_common(conn, terms)
    if not terms:
        return []

    if conn.dialect.name == "postgresql":
        marks = ", ".join(f":a{i}" for i in range(len(agents)))
        params: dict[str, object] = {f"a{i}": a for i, a in enumerate(agents)}
        params["limit"] = int(limit)
        params["q"] = " | ".join(terms)
        sql = (
            "SELECT id, ts_rank_cd(to_tsvector('simple', text), to_tsquery('simple', :q)) AS score FROM memories "
            f"WHERE to_tsvector('simple', text) @@ to_tsquery('simple', :q) AND agent IN ({marks}) "
            "ORDER BY score DESC, id LIMIT :limit"
        )
        return [(int(r[0]), float(r[1])) for r in conn.execute(sa.text(sql), params)]
    # SQLite: the driver's own statement (sa.text's compile per call was a quarter of the search)
    match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
    sql = (
        "SELECT m.id, -bm25(memories_fts) AS score FROM memories_fts JOIN memories m ON m.id = memories_fts.rowid "
        f"WHERE memories_fts MATCH ? AND m.agent IN ({', '.join('?' for _ in agents)}) "
        "ORDER BY bm25(memories_fts), m.id LIMIT ?"
    )
    rows = conn.exec_driver_sql(sql, (match, *agents, int(limit)))
    return [(int(r[0]), float(r[1])) for r in rows]


#: A word in more than this share of all memories is left out of a keyword search: it
#: barely moves BM25 (its IDF is near zero) and ranking every memory it matches is what
#: makes a search slow (130 ms at 100k memories when a query word is in 40% of them).
COMMON_SHARE = 0.05
#: ... but only past this many memories; below it every word is cheap to rank. (Until
#: this rule was applied from here on, the share was taken of at least this many, so a
#: word in 20% of 10k memories was still ranked: 4.3 ms of a 10k recall, bench/RESULTS.md.)
COMMON_MIN_DOCS = 2000

_df: dict[tuple[str, str], tuple[int, int]] = {}
_df_lock = threading.Lock()


def _without_common(conn: "sa.Connection", terms: list[str]) -> list[str]:
    """`terms` less the very common ones. Document frequencies are counted once per word
    and counted again when the index has grown by a tenth."""
    size = int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM memories").scalar() or 0)  # ids only grow
    if size <= COMMON_MIN_DOCS:
        return terms
    url = str(conn.engine.url)
    limit = COMMON_SHARE * size
    kept = []
    for term in terms:
        with _df_lock:
            known = _df.get((url, term))
        if known is None or size > known[1] * 1.1:
            df = _document_frequency(conn, term)
            with _df_lock:
                if len(_df) > 100_000:
                    _df.clear()
                _df[(url, term)] = known = (df, size)
        if known[0] <= limit:
            kept.append(term)
    return kept


def _document_frequency(conn: "sa.Connection", term: str) -> int:
    """How many memories hold `term` (through the full-text index of either database)."""
    if conn.dialect.name == "postgresql":
        import sqlalchemy as sa

        return int(conn.execute(sa.text(
            "SELECT count(*) FROM memories WHERE to_tsvector('simple', text) @@ to_tsquery('simple', :t)"),
            {"t": term}).scalar() or 0)
    phrase = '"' + term.replace('"', '""') + '"'
    return int(conn.exec_driver_sql("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?",
                                    (phrase,)).scalar() or 0)


def secure_delete(conn: "sa.Connection") -> None:
    """Have SQLite overwrite what this connection deletes (no-op elsewhere)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete=ON")


def scrub_after_delete(conn: "sa.Connection") -> None:
    """Rewrite the FTS index without the deleted rows' words (call after a hard delete)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("INSERT INTO memories_fts(memories_fts) VALUES('optimize')")


def checkpoint(engine: "sa.Engine") -> bool:
    """Move SQLite's write-ahead log into the file and truncate it; False when a reader
    kept part of it (the next checkpoint finishes the job)."""
    if engine.dialect.name != "sqlite":
        return True
    with engine.connect() as conn:
        row = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
    return row is not None and int(row[0]) == 0


def bump_version(conn: "sa.Connection", agent: str) -> int:
    """Add one to the scope's version and return it. First statement of every write
    transaction, so the transaction holds SQLite's write lock before it reads anything."""
    import sqlalchemy as sa

    return int(conn.execute(sa.text(
        "INSERT INTO memory_scopes (agent, version) VALUES (:a, 1) "
        "ON CONFLICT (agent) DO UPDATE SET version = memory_scopes.version + 1 RETURNING version"
    ), {"a": agent}).scalar_one())
