"""Any error -> the HTTP status and body of the API being spoken.

The status is the one the official SDKs turn into their typed exception (400
BadRequestError, 401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError,
413, 429 RateLimitError, 5xx InternalServerError, 529 OverloadedError for Anthropic).
A provider that rejects *Synapse's* key for it is 502, not 401: the caller's key was fine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    CostLimitError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    ProviderNotInstalledError,
    ProviderTimeoutError,
    RateLimitError,
    SettingsError,
    SynapseError,
    UnknownModelError,
)

__all__ = ["Problem", "bad_request", "problem_for"]


@dataclass(slots=True)
class Problem:
    """One error as the gateway reports it, whatever the API's shape."""

    status: int
    message: str
    #: OpenAI `error.type` / `error.code`, Anthropic `error.type`.
    openai_type: str = "invalid_request_error"
    code: str | None = None
    anthropic_type: str = "invalid_request_error"
    param: str | None = None
    retry_after: float | None = None

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after is None:
            return []
        return [(b"retry-after", str(max(0, math.ceil(self.retry_after))).encode())]


def bad_request(message: str, param: str | None = None) -> Problem:
    return Problem(400, message, param=param)


def problem_for(err: BaseException) -> Problem:
    """The Problem for an error raised on the call path (or a bug: a plain 500)."""
    from .keys import KeyRejected
    from .request import Invalid

    if isinstance(err, Invalid):
        return Problem(400, err.message, param=err.param)
    if isinstance(err, KeyRejected):
        return Problem(401, err.message, "invalid_request_error", "invalid_api_key", "authentication_error")
    if isinstance(err, ProviderError):
        return _provider_problem(err)
    if isinstance(err, (UnknownModelError, ConfigurationError)):
        return Problem(404, err.message, "invalid_request_error", "model_not_found", "not_found_error", "model")
    if isinstance(err, CostLimitError):
        return Problem(429, err.message, "insufficient_quota", "cost_limit", "rate_limit_error")
    if isinstance(err, ProviderNotInstalledError):
        return Problem(400, err.message, code="not_installed", param="model")
    if isinstance(err, SettingsError):
        return Problem(500, err.message, "server_error", "settings", "api_error")
    if isinstance(err, SynapseError):  # coercion of the caller's messages, tools, options
        return Problem(400, err.message)
    return Problem(500, "the gateway failed on this request; see the server log", "server_error", None, "api_error")


def _provider_problem(err: ProviderError) -> Problem:
    m = err.message
    if isinstance(err, AuthenticationError):
        return Problem(502, f"the provider rejected Synapse's key for it: {m}", "server_error", "upstream_auth", "api_error")
    if isinstance(err, PermissionDeniedError):
        return Problem(403, m, "invalid_request_error", "permission_denied", "permission_error")
    if isinstance(err, NotFoundError):
        return Problem(404, m, "invalid_request_error", "model_not_found", "not_found_error", "model")
    if isinstance(err, BadRequestError):
        code = "context_length_exceeded" if err.kind == "context_too_long" else None
        return Problem(400, m, "invalid_request_error", code, "invalid_request_error", err.param)
    if isinstance(err, RateLimitError):
        return Problem(429, m, "rate_limit_error", "rate_limit_exceeded", "rate_limit_error", retry_after=err.retry_after)
    if isinstance(err, OverloadedError):
        return Problem(529, m, "server_error", "overloaded", "overloaded_error", retry_after=err.retry_after)
    if isinstance(err, ProviderTimeoutError):
        return Problem(504, m, "server_error", "timeout", "timeout_error")
    return Problem(502, m, "server_error", "upstream_unavailable", "api_error", retry_after=err.retry_after)
