"""Long-term memory: what agents remember across sessions, recalled without breaking the prompt cache.

    store.py      MemoryStore: memories per agent scope ("*" is shared), vectors per
                  embedding model, history of every change (restore), hard delete
    recall.py     hybrid search (embeddings + BM25, reciprocal rank fusion), the recall block
    extract.py    the extraction call after a turn: JSON operations, validated, applied
    reembed.py    re-embedding after `embedding_model` changes: resumable, with progress
    vectors.py    exact vector search over in-process matrices kept in step with the database
    sql.py        the SQL that differs between SQLite and PostgreSQL
    embedding.py  which embedding model, through client.aembed (query / document mode)
    cli.py        `synapse memory ...`;  api.py: /api/v1/agents/{id}/memories

Every model call (embedding, extraction) goes through synapse.client, so the usage
ledger, limits and retries apply as to any other call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .records import SHARED, HistoryEntry, Hit, Memory, MemoryNotFound, MemoryStoreError

if TYPE_CHECKING:
    from .store import MemoryStore

__all__ = ["SHARED", "HistoryEntry", "Hit", "Memory", "MemoryNotFound", "MemoryStore", "MemoryStoreError"]


def __getattr__(name: str) -> Any:
    # The store needs numpy and SQLAlchemy; `synapse --help` imports this package for its CLI.
    if name == "MemoryStore":
        from .store import MemoryStore

        return MemoryStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
