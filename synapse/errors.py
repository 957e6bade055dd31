"""Synapse's error tree.

    SynapseError                      anything Synapse reports to a caller
    ├── SettingsError                 settings.json unreadable or a value is invalid
    ├── ConfigurationError            a provider is not set up (no key, no base URL)
    ├── UnknownModelError             a model name that routes nowhere
    ├── ProviderNotInstalledError     an optional local backend is missing
    ├── CostLimitError                a session/agent spend limit would be passed
    └── ProviderError                 a provider answered with an error, or could not be reached
        ├── AuthenticationError       the key was rejected
        ├── PermissionDeniedError     the key is valid but lacks access (model, region)
        ├── NotFoundError             the model or resource does not exist upstream
        ├── BadRequestError           the provider rejected the request itself
        │   └── ContextTooLongError   the prompt does not fit the model's context window
        ├── RateLimitError            429; carries the retry delay the provider asked for
        ├── OverloadedError           529 / "overloaded"
        ├── UpstreamUnavailableError  5xx, connection dropped, malformed body
        │   └── ConnectionFailedError no connection could be made at all
        └── ProviderTimeoutError      no answer in time

Every message says what to do next. No message ever contains a key: errors are built
from provider names and setting names, and provider bodies pass through `redact()`.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConnectionFailedError",
    "ContextTooLongError",
    "CostLimitError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProviderError",
    "ProviderNotInstalledError",
    "ProviderTimeoutError",
    "RateLimitError",
    "SettingsError",
    "SynapseError",
    "UnknownModelError",
    "UpstreamUnavailableError",
]


class SynapseError(Exception):
    """Root of every error Synapse raises on purpose."""

    #: Short machine-readable name, used in JSON output and the usage ledger.
    kind: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SettingsError(SynapseError):
    """settings.json cannot be read or a value in it is invalid."""

    kind = "settings"


class ConfigurationError(SynapseError):
    """A provider needed for the call is not configured."""

    kind = "not_configured"


class UnknownModelError(SynapseError):
    """A model name that no provider serves."""

    kind = "unknown_model"


class ProviderNotInstalledError(SynapseError):
    """An optional, in-process backend (Hugging Face transformers) is not installed."""

    kind = "not_installed"


class CostLimitError(SynapseError):
    """The next call would pass a configured spend limit."""

    kind = "cost_limit"


class ProviderError(SynapseError):
    """A provider answered with an error, or could not be reached."""

    kind = "provider_error"
    #: Whether the transport may retry the request that produced this error.
    retryable: bool = False
    #: The request field the provider blamed (OpenAI's `error.param`), when it named one.
    param: str | None = None

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.retry_after = retry_after
        self.request_id = request_id


class AuthenticationError(ProviderError):
    """The provider rejected the key."""

    kind = "authentication"


class PermissionDeniedError(ProviderError):
    """The key works but has no access to this model, region or feature."""

    kind = "permission"


class NotFoundError(ProviderError):
    """The model (or another named resource) does not exist at the provider."""

    kind = "not_found"


class BadRequestError(ProviderError):
    """The provider rejected the request as malformed or unsupported."""

    kind = "bad_request"


class ContextTooLongError(BadRequestError):
    """The prompt (plus max tokens) is larger than the model's context window."""

    kind = "context_too_long"


class RateLimitError(ProviderError):
    """429: too many requests or tokens; `retry_after` is the delay the provider asked for."""

    kind = "rate_limit"
    retryable = True


class OverloadedError(ProviderError):
    """The provider is overloaded (Anthropic 529, Bedrock ServiceUnavailable)."""

    kind = "overloaded"
    retryable = True


class UpstreamUnavailableError(ProviderError):
    """5xx, refused or dropped connection, or a body that is not the protocol's."""

    kind = "unavailable"
    retryable = True


class ConnectionFailedError(UpstreamUnavailableError):
    """No connection could be made: refused, unresolvable host, unreachable network."""

    kind = "connection_failed"


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within the timeout."""

    kind = "timeout"
    retryable = True
