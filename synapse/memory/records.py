"""What the memory store hands out: memories, their history, search hits; its errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import SynapseError

__all__ = ["SHARED", "HistoryEntry", "Hit", "Memory", "MemoryStoreError", "MemoryNotFound", "check_text"]

#: The scope every agent recalls from, besides its own.
SHARED = "*"

#: Longest memory text accepted (a memory is a fact, not a document).
MAX_TEXT = 2000


class MemoryStoreError(SynapseError):
    """A memory request that cannot be done as asked; the message says what to change."""

    kind = "memory"


class MemoryNotFound(MemoryStoreError):
    kind = "memory_not_found"


@dataclass(slots=True)
class Memory:
    id: int
    agent: str
    text: str
    #: How it was written: manual | remember | extract | import | restore.
    source: str
    session_id: str | None
    turn: int | None
    created_at: float
    updated_at: float
    last_recalled_at: float | None = None
    recall_count: int = 0
    #: The embedding models that hold a vector of it (filled by reads that ask for it).
    embedded_with: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Hit:
    """One search result: the memory, its fused score and what produced it."""

    memory: Memory
    #: Reciprocal-rank-fusion score (higher is better), or the single ranking's own score.
    score: float
    #: Cosine similarity to the query (None: no vector in the model used).
    similarity: float | None = None
    #: 1-based rank in the keyword (BM25) ranking (None: no word matched).
    keyword_rank: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.memory.id, "text": self.memory.text, "score": round(self.score, 6),
                "similarity": None if self.similarity is None else round(self.similarity, 4),
                "keyword_rank": self.keyword_rank, "agent": self.memory.agent}


@dataclass(slots=True)
class HistoryEntry:
    id: int
    memory_id: int
    agent: str
    op: str  # add | update | delete | restore
    old_text: str | None
    new_text: str | None
    actor: str
    session_id: str | None
    created_at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_text(text: object) -> str:
    """A memory's text, stripped; a MemoryStoreError that says what is wrong otherwise."""
    if not isinstance(text, str):
        raise MemoryStoreError(f"a memory is text, not {type(text).__name__}")
    clean = text.strip()
    if not clean:
        raise MemoryStoreError("a memory needs some text")
    if len(clean) > MAX_TEXT:
        raise MemoryStoreError(f"a memory is at most {MAX_TEXT} characters (this one has {len(clean)}): split it into facts")
    return clean
