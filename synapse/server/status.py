"""Background provider checks: the status dot of each Settings → Models card.

A check calls the provider adapter's `verify()` (a cheap key check that returns the
model list) in a task on the server's event loop, with a timeout. Pages never wait
for it: they read the cached status (`not_configured`, `checking`, `ok`, `error`) and
poll while a check is pending. A result is kept for the exact provider configuration
it was made with, so a changed key or base URL (from the page, the CLI or a hand
edit of settings.json) starts a fresh check the next time the status is read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderNotInstalledError,
    ProviderTimeoutError,
    RateLimitError,
    SynapseError,
    UpstreamUnavailableError,
)
from ..providers.catalog import ProviderConfig, ProviderSpec
from ..types import ModelInfo

__all__ = ["CHECK_TIMEOUT", "ProviderStatus", "StatusBoard", "is_configured", "known_models"]

CHECK_TIMEOUT = 10.0

AdapterFactory = Callable[[ProviderSpec, Mapping[str, Any]], Any]


@dataclass
class ProviderStatus:
    state: str  # not_configured | checking | ok | error
    #: A few plain words for the card ("Invalid key", "Cannot reach the base URL").
    reason: str = ""
    #: The provider's full reason, from the typed error (already key-free).
    detail: str = ""
    models: list[ModelInfo] = field(default_factory=list)
    checked_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "detail": self.detail,
            "models": len(self.models),
            "checked_at": self.checked_at,
        }


def is_configured(spec: ProviderSpec, settings: Mapping[str, Any], config: ProviderConfig | None = None) -> bool:
    """Whether the card counts as set up (so its status is checked and its models listed).

    Ollama has a default base URL, so it counts only once the user saved one (as
    `synapse models` does). Hugging Face runs in-process and has no settings: it is
    checked on demand only (the card's Check button).
    """
    if spec.protocol == "huggingface":
        return False
    if spec.id == "ollama":
        source = getattr(settings, "source", None)
        if source is not None and source(spec.base_url_setting) == "default":
            return False
    config = config or spec.configure(settings)
    return spec.is_configured(config)


def known_models(spec: ProviderSpec, config: ProviderConfig) -> list[ModelInfo]:
    """The seed model table plus the model names typed on the card."""
    out = [
        ModelInfo(id=spec.route_prefix + mid, provider=spec.id, upstream_id=mid, label=note,
                  embedding="embed" in mid)
        for mid, note in spec.known_models
    ]
    seen = {m.upstream_id for m in out}
    for mid in config.models:
        if mid not in seen:
            out.append(ModelInfo(id=spec.route_prefix + mid, provider=spec.id, upstream_id=mid))
            seen.add(mid)
    for mid in config.embed_models:
        if mid not in seen:
            out.append(ModelInfo(id=spec.route_prefix + mid, provider=spec.id, upstream_id=mid, embedding=True))
            seen.add(mid)
    return out


def _describe(spec: ProviderSpec, config: ProviderConfig, exc: BaseException, timeout: float) -> tuple[str, str, str]:
    """(state, short reason, detail) for a failed check, in plain words."""
    from ..providers.base import redact

    detail = redact(str(exc), config.api_key) if str(exc) else ""
    where = config.base_url or "the provider"
    if isinstance(exc, (ConfigurationError, ProviderNotInstalledError)):
        return "not_configured", "Not set up", detail
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ProviderTimeoutError)):
        return "error", "No answer in time", detail or f"{spec.label} did not answer within {timeout:g} s: check the base URL and your network"
    if isinstance(exc, AuthenticationError):
        return "error", "Invalid key", detail
    if isinstance(exc, PermissionDeniedError):
        reason = f"No access in {config.region}" if spec.id == "bedrock" and config.region else "No access"
        return "error", reason, detail
    if isinstance(exc, RateLimitError):
        return "error", "Rate limited", detail
    if isinstance(exc, NotFoundError):
        return "error", "Not found: check the base URL", detail
    if isinstance(exc, UpstreamUnavailableError):
        if exc.status is None and "malformed" not in detail:
            return "error", "Cannot reach the base URL", detail or f"cannot reach {where}"
        return "error", "Provider unavailable", detail
    if isinstance(exc, (ProviderError, SynapseError)):
        return "error", "Check failed", detail
    if isinstance(exc, ImportError):
        return "error", "Not supported yet", f"this build of Synapse cannot talk to {spec.label} yet ({redact(str(exc))})"
    if isinstance(exc, OSError):
        return "error", "Cannot reach the base URL", f"cannot reach {where}: {redact(str(exc), config.api_key)}"
    return "error", "Check failed", f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class StatusBoard:
    """Cached status per provider, refreshed by background checks on the running loop."""

    def __init__(self, adapter_factory: AdapterFactory | None = None, timeout: float = CHECK_TIMEOUT,
                 shared: Any = None) -> None:
        self._factory = adapter_factory
        self.timeout = timeout
        #: Scale mode: the Redis link the results are shared through (synapse/scale/status.py).
        self.shared = shared
        self._results: dict[str, tuple[ProviderConfig, ProviderStatus]] = {}
        self._tasks: dict[str, tuple[ProviderConfig, asyncio.Task[ProviderStatus]]] = {}
        #: Providers without settings (Hugging Face) that the user asked to check.
        self._on_demand: set[str] = set()

    def factory(self, spec: ProviderSpec, settings: Mapping[str, Any]) -> Any:
        if self._factory is not None:
            return self._factory(spec, settings)
        from ..providers import adapter_for

        return adapter_for(spec, settings)

    def configured(self, spec: ProviderSpec, settings: Mapping[str, Any], config: ProviderConfig | None = None) -> bool:
        return spec.id in self._on_demand or is_configured(spec, settings, config)

    def status(self, spec: ProviderSpec, settings: Mapping[str, Any]) -> ProviderStatus:
        """The current status; starts a check when there is no result for this configuration."""
        config = spec.configure(settings)
        if not self.configured(spec, settings, config):
            self.forget(spec.id)
            return ProviderStatus("not_configured")
        cached = self._results.get(spec.id)
        if cached is not None and cached[0] == config:
            return cached[1]
        running = self._tasks.get(spec.id)
        if running is None or running[0] != config:
            self.start(spec, settings)
        return ProviderStatus("checking")

    def start(self, spec: ProviderSpec, settings: Mapping[str, Any], *, on_demand: bool = False) -> asyncio.Task[ProviderStatus]:
        """Start a fresh check (dropping the cached result); returns its task."""
        if on_demand:
            self._on_demand.add(spec.id)
        config = spec.configure(settings)
        old = self._tasks.pop(spec.id, None)
        if old is not None and not old[1].done():
            old[1].cancel()
        self._results.pop(spec.id, None)
        task = asyncio.get_running_loop().create_task(self._check(spec, settings, config), name=f"check-{spec.id}")
        self._tasks[spec.id] = (config, task)
        return task

    async def wait(self, spec: ProviderSpec, settings: Mapping[str, Any]) -> ProviderStatus:
        """The status once any running check has finished (used by `?wait=true`)."""
        status = self.status(spec, settings)
        running = self._tasks.get(spec.id)
        if status.state == "checking" and running is not None:
            try:
                return await asyncio.shield(running[1])
            except asyncio.CancelledError:
                return self.status(spec, settings)
        return status

    def forget(self, provider_id: str) -> None:
        self._results.pop(provider_id, None)
        self._on_demand.discard(provider_id)
        running = self._tasks.pop(provider_id, None)
        if running is not None and not running[1].done():
            running[1].cancel()

    async def adopt(self, specs: list[ProviderSpec], settings: Mapping[str, Any]) -> None:
        """Scale mode: take the results other instances shared for this same configuration."""
        if self.shared is None:
            return
        from ..scale.status import shared_statuses

        for pid, (config, status) in (await shared_statuses(self.shared, specs, settings)).items():
            mine = self._results.get(pid)
            if mine is None or mine[0] != config or (status.checked_at or 0) > (mine[1].checked_at or 0):
                self._results[pid] = (config, status)
                running = self._tasks.get(pid)
                if running is not None and running[0] == config and not running[1].done():
                    running[1].cancel()  # someone else finished this very check
                    self._tasks.pop(pid, None)

    def pending(self) -> bool:
        return any(not t.done() for _, t in self._tasks.values())

    def models(self, spec: ProviderSpec, settings: Mapping[str, Any]) -> list[ModelInfo] | None:
        """The models of a connected provider (None when it is not connected)."""
        status = self.status(spec, settings)
        if status.state != "ok":
            return None
        return status.models

    async def _verify_and_list(self, adapter: Any) -> list[ModelInfo]:
        """`verify()` proves the key cheaply (often with one page of models); then the full list.

        Both share the timeout. A full list that fails or runs out of time after a good
        verify leaves the provider green with the models verify saw.
        """
        from ..providers.base import Adapter

        deadline = time.monotonic() + self.timeout
        verified = list(await asyncio.wait_for(adapter.verify(), self.timeout) or [])
        lister = getattr(adapter, "list_models", None)
        if lister is None or type(adapter).verify is Adapter.verify:  # the base verify *is* list_models
            return verified
        try:
            full = list(await asyncio.wait_for(lister(), max(0.5, deadline - time.monotonic())) or [])
        except asyncio.CancelledError:
            raise
        except Exception:
            return verified
        return full or verified

    async def close(self) -> None:
        tasks = [t for _, t in self._tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _check(self, spec: ProviderSpec, settings: Mapping[str, Any], config: ProviderConfig) -> ProviderStatus:
        try:
            adapter = self.factory(spec, settings)
            listed = await self._verify_and_list(adapter)
            describe = getattr(adapter, "status_detail", None)  # Hugging Face: versions and device
            detail = await asyncio.to_thread(describe) if callable(describe) else ""
            status = ProviderStatus("ok", models=_label(spec, config, list(listed or [])), checked_at=time.time(),
                                    detail=detail)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # every failure becomes a red dot with a reason
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            state, reason, detail = _describe(spec, config, exc, self.timeout)
            status = ProviderStatus(state, reason=reason, detail=detail, checked_at=time.time())
        current = self._tasks.get(spec.id)
        if current is not None and current[0] == config:
            self._results[spec.id] = (config, status)
            if self.shared is not None:
                from ..scale.status import publish

                await publish(self.shared, spec, config, status)
        return status


def _label(spec: ProviderSpec, config: ProviderConfig, listed: list[ModelInfo]) -> list[ModelInfo]:
    """Listed models labelled with the seed table's notes; the seed table when none are listed."""
    if not listed:
        return known_models(spec, config)
    notes = dict(spec.known_models)
    out = []
    for m in listed:
        label = m.label
        note = notes.get(m.upstream_id) or next(
            (n for mid, n in spec.known_models if m.upstream_id.startswith(mid + "-")), ""
        )
        if note and not label:
            label = note
        elif note and label and note not in label:
            label = f"{label} — {note}"
        out.append(ModelInfo(id=m.id, provider=m.provider, upstream_id=m.upstream_id, label=label, embedding=m.embedding))
    return out
