"""The Settings → Models status dots, shared through Redis: a provider checked by one instance
shows its result on every instance, and a saved key is checked once, not once per instance.

A finished check is stored as `synapse:status:<provider>` -> {"config": <fingerprint of the
provider configuration it was made with>, the status, its models}; a page's request first
fetches every provider's entry in one MGET and takes those whose fingerprint matches the
configuration this instance sees (`StatusBoard.adopt`). The fingerprint is a SHA-256 of
the configuration (the key itself never reaches Redis). Redis down: each instance checks
for itself, as a single instance does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..providers.catalog import ProviderConfig, ProviderSpec
from ..types import ModelInfo
from .shared import Link, RedisDown

__all__ = ["fingerprint", "publish", "shared_statuses"]

PREFIX = "synapse:status:"
#: Seconds a shared result is kept (a page keeps asking; the checks are cheap to redo).
TTL = 3600


def fingerprint(config: ProviderConfig) -> str:
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()


async def publish(link: Link, spec: ProviderSpec, config: ProviderConfig, status: Any) -> None:
    payload = json.dumps({
        "config": fingerprint(config),
        "state": status.state, "reason": status.reason, "detail": status.detail,
        "checked_at": status.checked_at, "models": [dataclasses.asdict(m) for m in status.models],
    })
    try:
        await link.run("sharing a provider check", lambda r: r.set(PREFIX + spec.id, payload, ex=TTL))
    except RedisDown:
        pass


async def shared_statuses(link: Link, specs: Sequence[ProviderSpec], settings: Mapping[str, Any]) -> dict[str, Any]:
    """provider id -> (config, ProviderStatus) for the shared results that match this configuration."""
    from ..server.status import ProviderStatus

    try:
        raw = await link.run("reading shared provider checks", lambda r: r.mget([PREFIX + s.id for s in specs]))
    except RedisDown:
        return {}
    out: dict[str, Any] = {}
    for spec, value in zip(specs, raw):
        if not value:
            continue
        data = json.loads(value)
        config = spec.configure(settings)
        if data.get("config") != fingerprint(config):
            continue
        out[spec.id] = (config, ProviderStatus(data["state"], data.get("reason", ""), data.get("detail", ""),
                                               [ModelInfo(**m) for m in data.get("models", [])], data.get("checked_at")))
    return out
