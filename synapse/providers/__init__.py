"""Provider adapters, built lazily: a protocol module is imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from .._env import getenv
from ..errors import ConfigurationError
from ..settings import Settings
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


#: provider id -> (the Settings snapshot, the environment it read, its ProviderConfig,
#: the adapters built for it by protocol).
_configs: dict[str, tuple[Any, tuple[str | None, ...], ProviderConfig, dict[str | None, Adapter]]] = {}
_env_names: dict[str, tuple[str, ...]] = {}


def _env_stamp(spec: ProviderSpec) -> tuple[str | None, ...]:
    """The environment variables `spec.configure` may read, as they are now."""
    names = _env_names.get(spec.id)
    if names is None:
        from ..settings import ENV_FALLBACKS

        names = tuple(n for s in (spec.key_setting, spec.base_url_setting) for n in ENV_FALLBACKS.get(s, ()))
        if spec.id == "bedrock":
            names += ENV_FALLBACKS.get("aws_region", ()) + ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
        _env_names[spec.id] = names
    return tuple([getenv(n) for n in names])


def adapter_for(spec: ProviderSpec, settings: Mapping[str, Any], protocol: str | None = None) -> Adapter:
    """The adapter for `spec` under the current settings; raises if the provider is not set up.

    A `settings.Settings` is an immutable snapshot (a change makes a new one), so its
    resolved config (and the adapter for it) is kept until the next snapshot or a change
    of the environment variables it falls back to; a plain mapping is resolved each time.
    """
    hit = _configs.get(spec.id)
    env = _env_stamp(spec)
    if hit is not None and hit[0] is settings and hit[1] == env:
        adapter = hit[3].get(protocol)
        if adapter is not None:
            return adapter
        config = hit[2]
    else:
        config = spec.configure(settings)
        hit = None
    if not spec.is_configured(config):
        raise not_configured(spec)
    adapter = build_adapter(spec, config, protocol)
    if isinstance(settings, Settings):
        if hit is None:
            hit = _configs[spec.id] = (settings, env, config, {})
        hit[3][protocol] = adapter
    return adapter
