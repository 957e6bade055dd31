"""Anthropic Messages: the error matrix, retries, model listing with pagination, verify, embed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import synapse
from synapse import settings as settings_mod
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
from synapse.providers import adapter_for, transport
from synapse.providers.catalog import get
from tests.conftest import provider_fake
from tests.fakes.anthropic import AnthropicFake

MODEL = "claude-sonnet-4-5"
KEY_REJECTED = "Anthropic Claude rejected the key in anthropic_key: check it at console.anthropic.com/settings/keys"


@pytest.fixture(scope="module")
def fake() -> Iterator[AnthropicFake]:
    yield from provider_fake(AnthropicFake)


@pytest.fixture
def anth(fake: AnthropicFake, configure: Any, monkeypatch: pytest.MonkeyPatch) -> AnthropicFake:
    fake.reset()
    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.001)
    configure(**fake.settings(max_retries=2, prompt_cache_enabled=False))
    return fake


def adapter() -> Any:
    return adapter_for(get("anthropic"), settings_mod.load())


# --- auth and client errors: never retried ------------------------------------------------------


async def test_wrong_key_is_401_authentication_error_with_the_fix(anth: AnthropicFake, configure: Any) -> None:
    wrong = "sk-ant-api03-this-key-is-wrong-000000"
    configure(anthropic_key=wrong)
    with pytest.raises(AuthenticationError) as info:
        await synapse.achat(MODEL, "hi")
    err = info.value
    assert str(err) == KEY_REJECTED + " (invalid x-api-key)"
    assert (err.status, err.provider, err.kind) == (401, "anthropic", "authentication")
    assert err.request_id and err.request_id.startswith("req_")
    assert wrong not in str(err)
    assert len(anth.requests) == 1
    assert {k.lower(): v for k, v in anth.last.headers.items()}["x-api-key"] == wrong


async def test_fake_rejects_a_missing_key_like_the_real_api(anth: AnthropicFake) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.post(anth.url + "/v1/messages", json={"model": MODEL}, headers={"anthropic-version": "2023-06-01"}) as r:
            assert r.status == 401
            body = await r.json()
            assert body["type"] == "error"
            assert body["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}
            assert r.headers["request-id"].startswith("req_")
        async with s.post(anth.url + "/v1/messages", json={}, headers={"x-api-key": anth.KEY}) as r:
            assert r.status == 400
            assert (await r.json())["error"]["message"] == "anthropic-version: header is required"


@pytest.mark.parametrize(
    ("status", "etype", "message", "error"),
    [
        (400, "invalid_request_error", "messages.0.content: Input should be a valid list", BadRequestError),
        (401, "authentication_error", "invalid x-api-key", AuthenticationError),
        (402, "billing_error", "Your credit balance is too low", PermissionDeniedError),
        (403, "permission_error", "Your API key does not have permission to use the specified resource.", PermissionDeniedError),
        (404, "not_found_error", "model: claude-foo", NotFoundError),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", ContextTooLongError),
        (400, "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum", ContextTooLongError),
        (400, "invalid_request_error", "input length and `max_tokens` exceed context limit: 178959 + 64000 > 200000", ContextTooLongError),
    ],
)
async def test_client_errors_map_to_typed_errors_and_are_not_retried(
    anth: AnthropicFake, status: int, etype: str, message: str, error: type
) -> None:
    anth.fail_next_error(status, etype, message, times=3)
    with pytest.raises(error) as info:
        await synapse.achat(MODEL, "hi")
    assert type(info.value) is error
    assert message in str(info.value)
    assert info.value.status == status and info.value.request_id == "req_011CFakeError"
    assert len(anth.requests) == 1


async def test_unknown_model_is_404_from_the_fake(anth: AnthropicFake) -> None:
    with pytest.raises(NotFoundError) as info:
        await synapse.achat("claude-sonnet-9-9", "hi")
    assert str(info.value) == "Anthropic Claude does not know that model or resource (model: claude-sonnet-9-9)"
    assert len(anth.requests) == 1


async def test_context_too_long_from_the_fake(anth: AnthropicFake) -> None:
    anth.context_window = 50
    prompt = "word " * 100
    with pytest.raises(ContextTooLongError) as info:
        await synapse.achat(MODEL, prompt)
    assert "prompt is too long: 125 tokens > 50 maximum" in str(info.value)
    assert "shorten it or pick a larger model" in str(info.value)
    assert len(anth.requests) == 1


async def test_a_key_echoed_in_an_error_body_is_redacted(anth: AnthropicFake) -> None:
    anth.fail_next_error(400, "invalid_request_error", f"bad header value {anth.KEY} here")
    with pytest.raises(BadRequestError) as info:
        await synapse.achat(MODEL, "hi")
    assert anth.KEY not in str(info.value) and "bad header value" in str(info.value)


# --- retried errors ----------------------------------------------------------------------------


async def test_429_with_retry_after_then_success(anth: AnthropicFake) -> None:
    anth.rate_limit_next(retry_after="0")
    r = await synapse.achat(MODEL, "hi")
    assert r.text == "You said: hi"
    assert len(anth.requests) == 2
    assert anth.requests[0].body == anth.requests[1].body


async def test_429_retries_exhausted(anth: AnthropicFake) -> None:
    anth.rate_limit_next(retry_after="0", times=5)
    with pytest.raises(RateLimitError) as info:
        await synapse.achat(MODEL, "hi")
    assert info.value.retry_after == 0.0 and info.value.status == 429
    assert "This request would exceed the rate limit" in str(info.value) and "retry in 0 s" in str(info.value)
    assert len(anth.requests) == 3  # 1 + max_retries


async def test_max_retries_setting_is_honoured(anth: AnthropicFake, configure: Any) -> None:
    configure(max_retries=0)
    anth.rate_limit_next(retry_after="0", times=2)
    with pytest.raises(RateLimitError):
        await synapse.achat(MODEL, "hi")
    assert len(anth.requests) == 1


async def test_429_that_says_overloaded_is_an_overloaded_error(anth: AnthropicFake, configure: Any) -> None:
    configure(max_retries=0)
    anth.rate_limit_next(retry_after="0", etype="overloaded_error")
    with pytest.raises(OverloadedError) as info:
        await synapse.achat(MODEL, "hi")
    assert info.value.status == 429 and info.value.kind == "overloaded"


async def test_529_overloaded_is_retried_then_succeeds(anth: AnthropicFake) -> None:
    anth.overloaded_next(times=2)
    assert (await synapse.achat(MODEL, "hi")).text == "You said: hi"
    assert len(anth.requests) == 3


async def test_529_retries_exhausted(anth: AnthropicFake) -> None:
    anth.overloaded_next(times=3)
    with pytest.raises(OverloadedError, match="Anthropic Claude is overloaded"):
        await synapse.achat(MODEL, "hi")
    assert len(anth.requests) == 3


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_retried_then_succeeds(anth: AnthropicFake, status: int) -> None:
    anth.server_error_next(status=status)
    assert (await synapse.achat(MODEL, "hi")).text == "You said: hi"
    assert len(anth.requests) == 2


async def test_5xx_retries_exhausted(anth: AnthropicFake) -> None:
    anth.server_error_next(times=3)
    with pytest.raises(UpstreamUnavailableError, match=r"server error \(Internal server error\)"):
        await synapse.achat(MODEL, "hi")
    assert len(anth.requests) == 3


async def test_non_json_5xx_from_a_proxy(anth: AnthropicFake) -> None:
    anth.fail_next(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}, times=3)
    with pytest.raises(UpstreamUnavailableError, match="HTTP 502"):
        await synapse.achat(MODEL, "hi")
    assert len(anth.requests) == 3


async def test_504_timeout_error(anth: AnthropicFake, configure: Any) -> None:
    configure(max_retries=0)
    anth.fail_next_error(504, "timeout_error", "Request timed out")
    with pytest.raises(ProviderTimeoutError):
        await synapse.achat(MODEL, "hi")


async def test_x_should_retry_wins_over_the_status(anth: AnthropicFake) -> None:
    anth.fail_next_error(529, "overloaded_error", "Overloaded", {"x-should-retry": "false"})
    with pytest.raises(OverloadedError):
        await synapse.achat(MODEL, "hi")
    assert len(anth.requests) == 1
    anth.reset()
    anth.fail_next_error(409, "invalid_request_error", "conflict", {"x-should-retry": "true"})
    assert (await synapse.achat(MODEL, "hi")).text == "You said: hi"
    assert len(anth.requests) == 2


async def test_dropped_connection_before_an_answer_is_retried(anth: AnthropicFake) -> None:
    anth.drop_next()
    assert (await synapse.achat(MODEL, "hi")).text == "You said: hi"
    assert len(anth.requests) == 2


# --- malformed bodies ----------------------------------------------------------------------------


async def test_malformed_body_is_a_protocol_error_not_retried(anth: AnthropicFake) -> None:
    anth.malformed_next()
    with pytest.raises(UpstreamUnavailableError, match="Anthropic Claude sent a malformed response: the body is not JSON"):
        await synapse.achat(MODEL, "hi")
    assert len(anth.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "msg_1", "type": "message"}',
        b'{"id": "msg_1", "type": "message", "content": ["text"]}',
        b'{"id": "msg_1", "type": "message", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}]}',
        b"[1, 2, 3]",
    ],
)
async def test_json_that_is_not_a_message_is_a_protocol_error(anth: AnthropicFake, body: bytes) -> None:
    anth.fail_next(200, body)
    with pytest.raises(UpstreamUnavailableError, match="malformed response"):
        await synapse.achat(MODEL, "hi")


async def test_error_body_on_a_200_is_still_an_error(anth: AnthropicFake, configure: Any) -> None:
    anth.fail_next(200, AnthropicFake.error_body("overloaded_error", "Overloaded"))
    with pytest.raises(OverloadedError):
        await synapse.achat(MODEL, "hi")


# --- models, verify, embed --------------------------------------------------------------------------


async def test_list_models_follows_pages(anth: AnthropicFake) -> None:
    anth.max_page_size = 2
    models = await adapter().list_models()
    assert [m.id for m in models] == [m["id"] for m in anth.models]
    assert [m.label for m in models][:3] == ["Claude Opus 4.5", "Claude Haiku 4.5", "Claude Sonnet 4.5"]
    assert all(m.provider == "anthropic" and m.upstream_id == m.id and not m.embedding for m in models)
    ids = [m["id"] for m in anth.models]
    assert [(r.method, r.path, r.query) for r in anth.requests] == [
        ("GET", "/v1/models", {"limit": "1000"}),
        ("GET", "/v1/models", {"limit": "1000", "after_id": ids[1]}),
        ("GET", "/v1/models", {"limit": "1000", "after_id": ids[3]}),
    ]
    headers = {k.lower(): v for k, v in anth.last.headers.items()}
    assert headers["x-api-key"] == anth.KEY and headers["anthropic-version"] == "2023-06-01"


async def test_list_models_single_page(anth: AnthropicFake) -> None:
    models = await adapter().list_models()
    assert len(models) == len(anth.models) and len(anth.requests) == 1


async def test_list_models_that_never_advance_is_a_protocol_error(anth: AnthropicFake) -> None:
    page = {"data": [{"type": "model", "id": "claude-x", "display_name": "X", "created_at": "2025-01-01T00:00:00Z"}],
            "has_more": True, "first_id": "claude-x", "last_id": "claude-x"}
    anth.fail_next(200, page, times=2)
    with pytest.raises(UpstreamUnavailableError, match="does not advance"):
        await adapter().list_models()
    assert len(anth.requests) == 2


async def test_verify_good_key_is_one_small_request(anth: AnthropicFake) -> None:
    models = await adapter().verify()
    assert [m.id for m in models] == [anth.models[0]["id"]]
    assert [(r.method, r.path, r.query) for r in anth.requests] == [("GET", "/v1/models", {"limit": "1"})]


async def test_verify_bad_key(anth: AnthropicFake, configure: Any) -> None:
    configure(anthropic_key="sk-ant-api03-revoked-key-123456789")
    with pytest.raises(AuthenticationError) as info:
        await adapter().verify()
    assert str(info.value).startswith(KEY_REJECTED)
    assert len(anth.requests) == 1


async def test_embed_says_anthropic_has_no_embeddings(anth: AnthropicFake) -> None:
    with pytest.raises(BadRequestError, match="offers no embedding models"):
        await adapter().embed("claude-sonnet-4-5", ["hello"])
    assert anth.requests == []


def test_cli_reports_a_429_after_retries_as_one_line(anth: AnthropicFake, configure: Any, cli: Any) -> None:
    configure(max_retries=1)
    anth.rate_limit_next(retry_after="0", times=2)
    res = cli("chat", "-m", MODEL, "--no-stream", "hi")
    assert res.code == 1 and res.out == ""
    assert res.err.startswith("synapse: Anthropic Claude rate limit reached") and res.err.count("\n") == 1
    assert len(anth.requests) == 2
