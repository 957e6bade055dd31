"""`GET /v1/models`: the models of every configured provider, the aliases, the local embedder.

Asking every provider takes a network round trip each, so the list is kept for
`TTL` seconds per settings (a settings change builds it again). A provider that fails
to answer is left out of that list, not an error: the others still work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LOCAL_EMBEDDING_MODEL", "Listed", "TTL", "listed_models"]

TTL = 60.0
#: The bundled local embedding model's name on /v1 (and in `synapse embed -m`).
LOCAL_EMBEDDING_MODEL = "local"
_PER_PROVIDER_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Listed:
    id: str
    owned_by: str
    label: str = ""
    embedding: bool = False


_cache: dict[int, tuple[float, Any, list[Listed]]] = {}


async def listed_models(settings: Mapping[str, Any]) -> list[Listed]:
    now = time.monotonic()
    hit = _cache.get(id(settings))
    if hit is not None and hit[1] is settings and now - hit[0] < TTL:
        return hit[2]
    models = await _collect(settings)
    if len(_cache) > 8:
        _cache.clear()
    _cache[id(settings)] = (now, settings, models)
    return models


async def _collect(settings: Mapping[str, Any]) -> list[Listed]:
    from ..providers import adapter_for
    from ..providers.catalog import PROVIDERS
    from ..providers.routing import aliases

    specs = []
    for spec in PROVIDERS:
        if spec.protocol == "huggingface":
            continue
        if not spec.is_configured(spec.configure(settings)):
            continue
        source = getattr(settings, "source", None)
        if spec.id == "ollama" and source is not None and source("ollama_base_url") == "default":
            continue  # not set up by the user: asking 127.0.0.1:11434 would only slow the list down
        specs.append(spec)

    async def one(spec: Any) -> list[Listed]:
        try:
            found = await asyncio.wait_for(adapter_for(spec, settings).list_models(), _PER_PROVIDER_TIMEOUT)
        except Exception:  # one provider down must not hide the others
            return []
        return [Listed(m.id, spec.id, m.label, m.embedding) for m in found]

    out: list[Listed] = []
    for group in await asyncio.gather(*(one(s) for s in specs)):
        out.extend(group)
    out.extend(Listed(name, "synapse-alias", f"alias of {target}") for name, target in aliases(settings).items())
    out.append(Listed(LOCAL_EMBEDDING_MODEL, "synapse", "bundled local embedding model (multilingual-e5-small)", True))
    return out
