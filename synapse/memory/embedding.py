"""Which embedding model memories use, and embedding through the one call path.

The model is the `embedding_model` setting, else the default of the `mode` setting (the
bundled local model unless Bedrock or an OpenAI-compatible server is the default). Its
vectors are stored under a key naming the provider and the upstream model
(`local:multilingual-e5-small-q4`, `bedrock:amazon.titan-embed-text-v2:0`,
`ollama:nomic-embed-text`), so two spellings of one model share vectors and two models
never mix. Memories are embedded as documents and searches as queries (aembed's mode).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .vectors import normalise

if TYPE_CHECKING:
    from ..client import CallContext

__all__ = ["configured_model", "embed_documents", "embed_query", "model_key"]


def configured_model(settings: Mapping[str, Any]) -> str:
    """The embedding model memories use: the one `aembed` uses when none is named
    (`embedding_model`, else the default of the `mode` setting), "local" for the bundled one."""
    from ..providers.routing import default_embedding_model

    return default_embedding_model(settings) or "local"


def model_key(settings: Mapping[str, Any], model: str | None = None) -> str:
    """The name vectors of `model` (default: the configured one) are stored under."""
    name = model or configured_model(settings)
    if name == "local":
        from ..embeddings_local import LOCAL_EMBEDDING_MODEL

        return LOCAL_EMBEDDING_MODEL
    from ..providers.routing import resolve

    route = resolve(name, settings, "embed")
    return f"{route.spec.id}:{route.upstream_model}"


async def embed_documents(
    settings: Mapping[str, Any], texts: Sequence[str], context: "CallContext | None" = None, model: str | None = None
) -> list[np.ndarray]:
    """Normalised document vectors of `texts` in `model` (default: the configured one)."""
    from ..client import aembed

    if not texts:
        return []
    vectors = await aembed(model or configured_model(settings), list(texts), settings=settings, context=context,
                           mode="document")
    return [normalise(v) for v in vectors]


async def embed_query(settings: Mapping[str, Any], text: str, context: "CallContext | None" = None,
                      model: str | None = None) -> np.ndarray:
    from ..client import aembed

    vectors = await aembed(model or configured_model(settings), [text], settings=settings, context=context,
                           mode="query")
    return normalise(vectors[0])
