"""Provider adapters, built lazily: a protocol module is imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError
from .base import Adapter
from .catalog import ProviderConfig, ProviderSpec

__all__ = ["Adapter", "adapter_for", "build_adapter", "not_configured"]

_adapters: dict[tuple[str, ProviderConfig, str], Adapter] = {}


def build_adapter(spec: ProviderSpec, config: ProviderConfig, protocol: str | None = None) -> Adapter:
    """The adapter for this provider and configuration; one instance per distinct config.

    `protocol` overrides the provider's own (OpenAI models routed to the Responses API).
    """
    protocol = protocol or spec.protocol
    cache_key = (spec.id, config, protocol)
    adapter = _adapters.get(cache_key)
    if adapter is None:
        module = importlib.import_module(f"{__name__}.{protocol}")
        adapter = module.build(spec, config)
        if len(_adapters) > 64:  # settings changed many times: drop stale configs
            _adapters.clear()
        _adapters[cache_key] = adapter
    return adapter


def not_configured(spec: ProviderSpec) -> ConfigurationError:
    from ..settings import ENV_FALLBACKS

    setting = spec.missing_setting()
    env = ENV_FALLBACKS.get(setting, ())
    env_hint = f" or the {' / '.join(env)} environment variable" if env else ""
    if spec.id == "bedrock":
        env_hint = " (or AWS_BEARER_TOKEN_BEDROCK, or AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY)"
    return ConfigurationError(
        f"{spec.label} is not configured: set {setting} in Settings → Models, "
        f"with `synapse config set {setting} VALUE`{env_hint}"
    )


def adapter_for(spec: ProviderSpec, settings: Mapping[str, Any], protocol: str | None = None) -> Adapter:
    """The adapter for `spec` under the current settings; raises if the provider is not set up."""
    config = spec.configure(settings)
    if not spec.is_configured(config):
        raise not_configured(spec)
    return build_adapter(spec, config, protocol)

