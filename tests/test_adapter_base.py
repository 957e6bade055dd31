"""The pieces every adapter shares: `extra` merging, key redaction, HTTP status -> typed error."""

from __future__ import annotations

import pytest

from synapse.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderTimeoutError,
    RateLimitError,
    UpstreamUnavailableError,
)
from synapse.providers.base import merge_extra, redact
from synapse.providers.catalog import get
from synapse.providers import build_adapter


def test_merge_extra_merges_dicts_one_level_and_replaces_the_rest() -> None:
    body = {"model": "m", "options": {"temperature": 0.1, "num_predict": 5}, "stop": ["x"]}
    merge_extra(body, {"options": {"top_k": 3, "num_predict": 9}, "stop": ["y"], "seed": 7})
    assert body == {"model": "m", "options": {"temperature": 0.1, "num_predict": 9, "top_k": 3}, "stop": ["y"], "seed": 7}


def test_redact_masks_the_configured_key_and_anything_key_shaped() -> None:
    text = "Incorrect API key provided: sk-proj-abcdefghijklmnop1234; also AIzaSyA-1234567890abcdef and secret-value-9999"
    out = redact(text, "secret-value-9999")
    assert "abcdefghijklmnop" not in out and "1234567890abcdef" not in out and "secret-value" not in out
    assert "sk-proj-…1234" in out and "…9999" in out


@pytest.mark.parametrize(
    ("status", "detail", "error"),
    [
        (401, "bad key", AuthenticationError),
        (403, "no access", PermissionDeniedError),
        (403, "Input token count + max_tokens parameter must be less than the context length", ContextTooLongError),
        (404, "no such model", NotFoundError),
        (408, "", ProviderTimeoutError),
        (400, "prompt is too long: 208310 tokens > 200000 maximum", ContextTooLongError),
        (400, "temperature must be <= 2", BadRequestError),
        (413, "", ContextTooLongError),
        (422, "unprocessable", BadRequestError),
        (429, "slow down", RateLimitError),
        (500, "boom", UpstreamUnavailableError),
        (503, "busy", UpstreamUnavailableError),
        (529, "overloaded", OverloadedError),
    ],
)
def test_status_maps_to_a_typed_error(status: int, detail: str, error: type) -> None:
    adapter = build_adapter(get("openai"), get("openai").configure({"openai_key": "sk-test-000000000000"}))
    err = adapter.error_for_status(status, detail, {"retry-after": "3", "x-request-id": "req_1"})
    assert type(err) is error
    assert err.provider == "openai" and err.status == status and err.request_id == "req_1"
    assert err.retry_after == 3.0
    if status == 401:
        assert str(err).startswith("OpenAI rejected the key in openai_key: check it at platform.openai.com")
