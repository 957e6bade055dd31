"""Every Ollama failure path: typed errors, what is retried and what is not (§8.1, §9)."""

from __future__ import annotations

import pytest

import synapse
from synapse.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnknownModelError,
    UpstreamUnavailableError,
)
from synapse.providers import adapter_for, build_adapter, transport
from synapse.providers.catalog import ProviderConfig
from synapse.providers.catalog import get as get_spec
from synapse.settings import load as load_settings
from synapse.types import ResponseDone, TextDelta
from tests.conftest import provider_fake
from tests.fakes.base import FakeReply, free_port
from tests.fakes.ollama import OllamaFake

NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def ollama_server():
    yield from provider_fake(OllamaFake)


@pytest.fixture
def fake(ollama_server, configure, monkeypatch):
    ollama_server.reset()
    configure(ollama_base_url=ollama_server.url, max_retries=2)
    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.001)  # Ollama sends no Retry-After on 5xx
    return ollama_server


async def drain(model, prompt="hi", **kw):
    seen = []
    async for event in synapse.astream(model, prompt, **kw):
        seen.append(event)
    return seen


# --- before the answer: HTTP statuses --------------------------------------------------------


async def test_unknown_model_with_prefix_is_not_found_and_not_retried(fake):
    with pytest.raises(NotFoundError) as exc:
        await synapse.achat("ollama.mistral", "hi")
    assert "model 'mistral' not found" in str(exc.value) and "ollama pull" in str(exc.value)
    assert exc.value.status == 404 and exc.value.provider == "ollama"
    assert len(fake.requests) == 1


@pytest.mark.parametrize("streaming", [False, True])
async def test_bare_unknown_name_lists_known_prefixes(fake, streaming):
    with pytest.raises(UnknownModelError) as exc:
        if streaming:
            await drain("mistral")
        else:
            await synapse.achat("mistral", "hi")
    msg = str(exc.value)
    assert "'mistral' matches no provider prefix" in msg and "Ollama does not have it" in msg
    for prefix in ("claude-", "gpt-", "gemini-", "ollama.<name>", "oaic.<name>", "hf.<name>"):
        assert prefix in msg
    assert len(fake.requests) == 1


async def test_unreachable_ollama(configure):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    configure(ollama_base_url=url, max_retries=0)
    with pytest.raises(UpstreamUnavailableError) as exc:
        await synapse.achat("ollama.llama3.2", "hi")
    assert str(exc.value).startswith(f"Ollama cannot be reached at {url}")
    assert "ollama serve" in str(exc.value) and "ollama_base_url" in str(exc.value)
    with pytest.raises(UpstreamUnavailableError, match="Ollama cannot be reached at"):
        await drain("ollama.llama3.2")
    # A bare name says it went to Ollama, and that Ollama is not there.
    with pytest.raises(UnknownModelError) as exc2:
        await synapse.achat("mistral", "hi")
    assert f"Ollama cannot be reached at {url}" in str(exc2.value) and "Known prefixes" in str(exc2.value)
    with pytest.raises(UnknownModelError, match="Ollama cannot be reached"):
        await drain("mistral")


async def test_verify_unreachable_says_how_to_start_it(configure):
    url = f"http://127.0.0.1:{free_port()}"
    configure(ollama_base_url=url, max_retries=0)
    adapter = adapter_for(get_spec("ollama"), load_settings())
    with pytest.raises(UpstreamUnavailableError) as exc:
        await adapter.verify()
    assert f"Ollama cannot be reached at {url}" in str(exc.value)
    assert "start it with `ollama serve` or fix ollama_base_url" in str(exc.value)


async def test_400_is_bad_request_and_not_retried(fake):
    with pytest.raises(BadRequestError) as exc:
        await synapse.achat("nomic-embed-text", "chat with an embedding model")
    assert type(exc.value) is BadRequestError
    assert '"nomic-embed-text" does not support chat' in str(exc.value)
    assert len(fake.requests) == 1


async def test_401_and_403_are_typed_and_not_retried(fake):
    fake.fail_next(401, {"error": "unauthorized"}, times=3)
    with pytest.raises(AuthenticationError) as exc:
        await synapse.achat("llama3.2", "hi")
    assert "needs no key" in str(exc.value) and "(unauthorized)" in str(exc.value)
    assert len(fake.requests) == 1
    fake.reset()
    fake.fail_next(403, {"error": "forbidden"}, times=3)
    with pytest.raises(PermissionDeniedError, match="forbidden"):
        await drain("llama3.2")
    assert len(fake.requests) == 1


async def test_key_is_sent_and_never_shown(fake):
    """An authenticating server (ollama.com, a proxy): Bearer key, 401 without a valid one."""
    fake.require_key = True
    try:
        key = "ollama-cloud-secret-0123456789"
        spec = get_spec("ollama")
        good = build_adapter(spec, ProviderConfig(api_key="test-key-ollama", base_url=fake.url, max_retries=0))
        assert [m.upstream_id for m in await good.list_models()][:1] == ["llama3.2:latest"]
        assert fake.last.headers["Authorization"] == "Bearer test-key-ollama"
        bad = build_adapter(spec, ProviderConfig(api_key=key, base_url=fake.url, max_retries=2))
        with pytest.raises(AuthenticationError) as exc:
            await bad.verify()
        assert key not in str(exc.value) and exc.value.status == 401
        assert len(fake.requests) == 2  # not retried
    finally:
        fake.require_key = False


async def test_429_with_retry_after_then_success(fake):
    fake.fail_next(429, {"error": "too many requests"}, headers={"Retry-After": "0"})
    r = await synapse.achat("llama3.2", "hi")
    assert r.text == "Echo: hi" and len(fake.requests) == 2
    fake.reset()
    fake.fail_next(429, {"error": "too many requests"}, headers={"Retry-After": "0"})
    events = await drain("llama3.2")
    assert events[-1].response.text == "Echo: hi" and len(fake.requests) == 2


async def test_429_retries_exhausted(fake, configure):
    configure(max_retries=1)
    fake.fail_next(429, {"error": "too many requests"}, headers={"Retry-After": "0"}, times=3)
    with pytest.raises(RateLimitError) as exc:
        await synapse.achat("llama3.2", "hi")
    assert exc.value.retry_after == 0 and "too many requests" in str(exc.value)
    assert len(fake.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_retried_then_succeeds(fake, status):
    fake.fail_next(status, {"error": "llama runner process has terminated"})
    events = await drain("llama3.2")
    assert events[-1].response.text == "Echo: hi"
    assert len(fake.requests) == 2


async def test_5xx_retries_exhausted(fake):
    fake.fail_next(500, {"error": "model requires more system memory than is available"}, times=3)
    with pytest.raises(UpstreamUnavailableError) as exc:
        await synapse.achat("ollama.llama3.2", "hi")
    assert "HTTP 500" in str(exc.value) and "more system memory" in str(exc.value)
    assert len(fake.requests) == 3


async def test_dropped_connection_before_the_answer_is_retried(fake):
    fake.drop_next()
    r = await synapse.achat("llama3.2", "hi")
    assert r.text == "Echo: hi" and len(fake.requests) == 2


async def test_context_too_long_is_not_retried(fake):
    fake.context_length = 10
    try:
        with pytest.raises(ContextTooLongError) as exc:
            await synapse.achat("llama3.2", "word " * 100)
        assert "exceeded max context length" in str(exc.value)
        assert len(fake.requests) == 1
    finally:
        fake.context_length = None


async def test_wrong_base_url_path_is_explained(fake, configure):
    configure(ollama_base_url=fake.url + "/v1")
    with pytest.raises(UpstreamUnavailableError) as exc:
        await synapse.achat("ollama.llama3.2", "hi")
    assert "404 page not found" in str(exc.value) and "server root" in str(exc.value)
    assert len(fake.requests) == 1  # a wrong URL is not retried
    assert fake.last.path == "/v1/api/chat"


# --- after the answer started --------------------------------------------------------------------


async def test_drop_mid_stream_is_reported_not_retried(fake):
    fake.reply(FakeReply(text="one two three four five six", break_after_events=3))
    seen = []
    with pytest.raises(UpstreamUnavailableError) as exc:
        async for event in synapse.astream("llama3.2", "hi"):
            seen.append(event)
    assert "(mid-stream)" in str(exc.value)
    assert [e.text for e in seen] == ["one ", "two ", "three "]
    assert len(fake.requests) == 1


async def test_in_stream_error_line(fake):
    fake.reply(FakeReply(text="one two three", error_after_events=2))
    seen = []
    with pytest.raises(UpstreamUnavailableError) as exc:
        async for event in synapse.astream("llama3.2", "hi"):
            seen.append(event)
    assert "unexpected EOF" in str(exc.value) and "(mid-stream)" in str(exc.value)
    assert [type(e) for e in seen] == [TextDelta, TextDelta]
    assert len(fake.requests) == 1


async def test_in_stream_context_error_is_typed(fake):
    fake.fail_next(200, b'{"error":"the input length exceeds the context length"}\n', headers=NDJSON)
    with pytest.raises(ContextTooLongError, match="mid-stream"):
        await drain("llama3.2")


async def test_malformed_bodies(fake):
    fake.fail_next(200, b"<html>proxy error</html>")
    with pytest.raises(UpstreamUnavailableError, match="malformed"):
        await synapse.achat("ollama.llama3.2", "hi")
    fake.fail_next(200, b'{"model":"llama3.2","done":true}')
    with pytest.raises(UpstreamUnavailableError, match="no message object"):
        await synapse.achat("ollama.llama3.2", "hi")
    fake.fail_next(200, b'{"model":"llama3.2","message":{"role":"assistant","content":"hi"},"done":false}\nnot json\n', headers=NDJSON)
    with pytest.raises(UpstreamUnavailableError, match="not JSON"):
        await drain("ollama.llama3.2")
    fake.fail_next(
        200,
        b'{"model":"llama3.2","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":[1]}}]},"done":false}\n',
        headers=NDJSON,
    )
    with pytest.raises(UpstreamUnavailableError, match="not a JSON object"):
        await drain("ollama.llama3.2")
    assert len(fake.requests) == 4  # a malformed 200 is never retried


async def test_bare_name_server_error_is_not_reported_as_unreachable(fake, configure):
    configure(max_retries=0)
    fake.fail_next(500, {"error": "llama runner process has terminated"})
    with pytest.raises(Exception) as exc:
        await synapse.achat("llama3.2", "hi")
    assert "cannot be reached" not in str(exc.value)
    assert "llama runner process has terminated" in str(exc.value)


async def test_stream_that_ends_without_done(fake):
    fake.fail_next(200, b'{"model":"llama3.2","message":{"role":"assistant","content":"partial"},"done":false}\n', headers=NDJSON)
    seen = []
    with pytest.raises(UpstreamUnavailableError, match="before its final message"):
        async for event in synapse.astream("llama3.2", "hi"):
            seen.append(event)
    assert [e.text for e in seen] == ["partial"]


async def test_blank_lines_and_split_writes_are_tolerated(fake):
    body = (
        b'{"model":"m","message":{"role":"assistant","content":"Hel"},"done":false}\n\n'
        b'{"model":"m","message":{"role":"assistant","content":"lo"},"done":false}\r\n'
        b'{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":7,"eval_count":2}'
    )
    fake.fail_next(200, body, headers=NDJSON)
    events = await drain("llama3.2")
    r = events[-1].response
    assert isinstance(events[-1], ResponseDone)
    assert (r.text, r.usage.input_tokens, r.usage.output_tokens) == ("Hello", 7, 2)


async def test_embed_errors(fake):
    with pytest.raises(NotFoundError, match="not found"):
        await synapse.aembed("ollama.missing-embedder", ["x"])
    with pytest.raises(UnknownModelError, match="Known prefixes"):
        await synapse.aembed("missing-embedder", ["x"])
    fake.fail_next(200, {"model": "nomic-embed-text", "embeddings": [[0.1]]})
    with pytest.raises(UpstreamUnavailableError, match="no embeddings for the 2 inputs"):
        await synapse.aembed("ollama.nomic-embed-text", ["a", "b"])
