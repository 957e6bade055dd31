"""Model name -> (provider, upstream model id).

`claude-sonnet-4-5` goes to Anthropic as is; `oaic.my-model` goes to the
OpenAI-compatible cloud as `my-model`; a bare name that matches nothing goes to the
provider the `mode` setting names (Ollama by default, see BARE_NAME_PROVIDER).
A name in the `model_aliases` setting (`{"fast": "claude-haiku-4-5"}`) is replaced by
its target first, for every caller (one level: an alias never names another alias).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import UnknownModelError
from ..settings import Settings
from .catalog import PROVIDERS, ProviderSpec, protocol_for
from .catalog import get as get_spec

__all__ = ["BARE_NAME_PROVIDER", "KNOWN_PREFIXES", "Route", "aliases", "bare_name_provider", "default_embedding_model", "resolve"]

# o1, o3, o4 and their dashed forms (o1-mini, o3-pro, o4-mini-2025-04-16), not "o3x".
_O_SERIES = re.compile(r"^o[134](?:-|$)")

_ROUTE_PREFIXES = tuple((p.route_prefix, p) for p in PROVIDERS if p.route_prefix)
_NAME_PREFIXES = tuple(
    (prefix, p) for p in PROVIDERS for prefix in p.name_prefixes if not re.fullmatch(r"o[134]", prefix)
)

#: Embedding model names that carry no routing prefix of their own.
_EMBED_NAME_PREFIXES = (
    ("text-embedding-00", "gemini"),  # Google's text-embedding-004/005; OpenAI's are text-embedding-3-*, -ada-
    ("text-embedding-", "openai"),
    ("amazon.titan-embed", "bedrock"),
    ("cohere.embed", "bedrock"),
)

#: For error messages: every prefix a user can type.
KNOWN_PREFIXES = tuple(prefix for prefix, _ in _NAME_PREFIXES) + ("o1", "o3", "o4") + tuple(
    prefix + "<name>" for prefix, _ in _ROUTE_PREFIXES
)


#: `mode` -> the provider a bare name (one with no provider prefix) goes to: the
#: provider of that family that serves arbitrary model names.
BARE_NAME_PROVIDER = {"local": "ollama", "cloud": "oaic", "bedrock": "bedrock"}

#: Bedrock's default embedding model (`mode` bedrock).
BEDROCK_EMBEDDING_MODEL = "bedrock.amazon.titan-embed-text-v2:0"


def bare_name_provider(settings: Mapping[str, Any] | None) -> str:
    """The provider id bare names go to under these settings (Ollama unless `mode` says otherwise)."""
    mode = str((settings.get("mode") if settings is not None else None) or "local").strip().lower()
    return BARE_NAME_PROVIDER.get(mode, "ollama")


def default_embedding_model(settings: Mapping[str, Any]) -> str:
    """The embedding model for calls that name none: `embedding_model`, else the one `mode` picks.

    "" means the bundled local model (mode local, or cloud without an embedding model listed).
    """
    name = str(settings.get("embedding_model") or "").strip()
    if name:
        return name
    provider = bare_name_provider(settings)
    if provider == "bedrock":
        return BEDROCK_EMBEDDING_MODEL
    if provider == "oaic":
        listed = [v.strip() for v in str(settings.get("openai_compatible_embed_models") or "").split(",") if v.strip()]
        return "oaic." + listed[0] if listed else ""
    return ""


@dataclass(frozen=True, slots=True)
class Route:
    spec: ProviderSpec
    #: The id sent to the provider (routing prefix stripped, inference profile applied).
    upstream_model: str
    #: The name as the caller wrote it.
    model: str
    #: True when the name matched no prefix and went to the `mode`'s provider.
    bare: bool = False
    #: The wire protocol of this call ("" = the provider's own): OpenAI models can go
    #: to the Responses API (`catalog.protocol_for`).
    protocol: str = ""

    def __post_init__(self) -> None:
        if not self.protocol:
            object.__setattr__(self, "protocol", self.spec.protocol)


_alias_cache: tuple[Any, dict[str, str]] = (None, {})


def aliases(settings: Mapping[str, Any] | None) -> dict[str, str]:
    """The `model_aliases` setting as a dict: a JSON object, or `fast=claude-haiku-4-5, smart=gpt-5`
    as typed on the command line. Parsed once per distinct value."""
    global _alias_cache
    raw = settings.get("model_aliases") if settings is not None else None
    if not raw:
        return {}
    cached_raw, parsed = _alias_cache
    if raw is cached_raw or (cached_raw is not None and raw == cached_raw):
        return parsed
    parsed = _parse_aliases(raw)
    _alias_cache = (raw, parsed)
    return parsed


def _parse_aliases(raw: Any) -> dict[str, str]:
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("{"):
            import json

            try:
                raw = json.loads(text)
            except ValueError:
                raise UnknownModelError(
                    "the model_aliases setting is not a JSON object: write it as "
                    '{"fast": "claude-haiku-4-5"} or fast=claude-haiku-4-5, smart=gpt-5'
                ) from None
        else:
            raw = dict(pair.split("=", 1) for pair in text.split(",") if "=" in pair)
    if not isinstance(raw, Mapping):
        raise UnknownModelError('the model_aliases setting must map names to models, e.g. {"fast": "claude-haiku-4-5"}')
    return {str(k).strip(): str(v).strip() for k, v in raw.items() if str(k).strip() and str(v).strip()}


#: The routes worked out under one settings snapshot: (that snapshot, (model, purpose) -> Route).
#: A `Settings` never changes (a save makes a new one), so the gateway routes each model
#: name once per snapshot instead of once a request. Replaced whole, never edited across
#: snapshots, so a thread routing under another snapshot cannot mix the two.
_routes: tuple[Any, dict[tuple[str, str], Route]] = (None, {})
_ROUTES_MAX = 1024


def resolve(model: str, settings: Mapping[str, Any] | None = None, purpose: Literal["chat", "embed"] = "chat") -> Route:
    """Where a call to `model` goes under `settings` (aliases applied)."""
    global _routes
    cache = _routes
    if settings is not None and cache[0] is settings:
        hit = cache[1].get((model, purpose))
        if hit is not None:
            return hit
    route = _resolve(model, settings, purpose)
    if isinstance(settings, Settings):
        if cache[0] is not settings:
            cache = _routes = (settings, {})
        if len(cache[1]) < _ROUTES_MAX:
            cache[1][(model, purpose)] = route
    return route


def _resolve(model: str, settings: Mapping[str, Any] | None, purpose: str) -> Route:
    name = model.strip()
    if not name:
        raise UnknownModelError("no model given: pass a model name (e.g. claude-sonnet-4-5) or set `model` in settings")
    table = aliases(settings)
    if table:
        name = table.get(name, name)
    for prefix, spec in _ROUTE_PREFIXES:
        if name.startswith(prefix):
            upstream = name[len(prefix):]
            if not upstream:
                raise UnknownModelError(f"{name!r} names no model: write {prefix}<model name>")
            return Route(spec, _with_profile(spec, upstream, settings, purpose), name)
    if purpose == "embed":
        for prefix, provider_id in _EMBED_NAME_PREFIXES:
            if name.startswith(prefix):
                return Route(get_spec(provider_id), name, name)
    for prefix, spec in _NAME_PREFIXES:
        if name.startswith(prefix):
            return Route(spec, name, name, protocol=protocol_for(spec, name, settings) if purpose == "chat" else "")
    if _O_SERIES.match(name):
        spec = get_spec("openai")
        return Route(spec, name, name, protocol=protocol_for(spec, name, settings) if purpose == "chat" else "")
    spec = get_spec(bare_name_provider(settings))
    return Route(spec, _with_profile(spec, name, settings, purpose), name, bare=True)


def _with_profile(spec: ProviderSpec, upstream: str, settings: Mapping[str, Any] | None, purpose: str) -> str:
    """Bedrock chat goes through `bedrock_inference_profile` when one is set."""
    if spec.id == "bedrock" and purpose == "chat" and settings is not None:
        profile = str(settings.get("bedrock_inference_profile") or "").strip()
        if profile:
            return profile
    return upstream
