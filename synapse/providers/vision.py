"""Which models read images: what the providers' documents and model lists say; None when
nothing says, and then the caller lets the provider decide.

* Per provider (`ProviderSpec.images`): every Claude model reads images; DeepSeek's API
  takes text only (an image part is a 400 "unknown variant `image_url`, expected `text`").
* Per model, from the lists a provider publishes (`ModelInfo.images`): Bedrock's
  ListFoundationModels `inputModalities`, OpenRouter's `architecture.input_modalities`.
  They are remembered here when a list is read (the server's provider checks), so a
  process that has not read a list knows only the provider-wide facts.
* Nobody says: OpenAI, xAI, Gemini (Gemma includes text-only models), Ollama (per model
  through /api/show, not read), local servers. The genai-prices tables have no modality field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..types import ModelInfo

__all__ = ["remember", "takes_images"]

#: (provider id, upstream model id) -> reads images, from the last model list read in this process.
_listed: dict[tuple[str, str], bool] = {}


def remember(models: Iterable[ModelInfo]) -> None:
    """Keep what a model list said about images."""
    for m in models:
        if m.images is not None:
            _listed[(m.provider, m.upstream_id)] = m.images


def takes_images(model: str, settings: Mapping[str, Any] | None = None) -> bool | None:
    """True / False when a provider's document or list says whether `model` reads images."""
    from ..errors import SynapseError
    from .routing import resolve

    try:
        route = resolve(model, settings)
    except SynapseError:
        return None
    listed = _listed.get((route.spec.id, route.upstream_model))
    return listed if listed is not None else route.spec.images
