"""The `synapse` CLI against the fake Gemini service (in-process and one real subprocess)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.gemini import GeminiFake, GeminiReply

KEY = "AIzaSyFakeGeminiCliKey0123456789ab"
MODEL = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def fake() -> Iterator[GeminiFake]:
    server = GeminiFake(valid_keys={KEY}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gem(fake: GeminiFake, configure: Any) -> GeminiFake:
    fake.reset()
    configure(gemini_key=KEY, gemini_base_url=fake.url, max_retries=0)
    return fake


def test_chat_streams_by_default(gem: GeminiFake, cli: Any) -> None:
    res = cli("chat", "-m", MODEL, "-s", "Be brief.", "--max-tokens", "100", "--temperature", "0.5", "hello", "cli")
    assert res.code == 0, res.err
    assert res.out == "Gemini heard: hello cli\n"
    assert gem.last.path.endswith(":streamGenerateContent") and gem.last.query == {"alt": "sse"}
    assert gem.last.json() == {
        "contents": [{"role": "user", "parts": [{"text": "hello cli"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 100, "temperature": 0.5},
    }


def test_chat_json_reports_normalised_usage(gem: GeminiFake, cli: Any) -> None:
    gem.reply(GeminiReply(text="cached", input_tokens=12, cache_read_tokens=2048, output_tokens=9, reasoning_tokens=4,
                          reasoning="think"))
    res = cli("chat", "-m", MODEL, "--json", "hi")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["text"] == "cached" and data["provider"] == "gemini" and data["model"] == MODEL
    assert data["stop_reason"] == "end_turn"
    assert data["usage"] == {"input_tokens": 12, "output_tokens": 9, "cache_read_tokens": 2048,
                             "cache_write_tokens": 0, "reasoning_tokens": 4}


def test_chat_no_stream(gem: GeminiFake, cli: Any) -> None:
    res = cli("chat", "-m", MODEL, "--no-stream", "plain")
    assert res.code == 0, res.err
    assert res.out == "Gemini heard: plain\n"
    assert gem.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"


def test_chat_error_is_one_line(gem: GeminiFake, cli: Any) -> None:
    gem.fail_rate_limited(retry_delay="7s")
    res = cli("chat", "-m", MODEL, "hi")
    assert res.code == 1
    assert res.err.count("\n") == 1
    assert res.err.startswith("synapse: Google Gemini rate limit or quota reached") and "retry in 7 s" in res.err
    assert len(gem.requests) == 1  # max_retries=0


def test_models_lists_chat_and_embedding_models(gem: GeminiFake, cli: Any) -> None:
    res = cli("models", "--json")
    assert res.code == 0, res.err
    [entry] = [e for e in json.loads(res.out) if e["provider"] == "gemini"]
    assert "gemini-2.5-pro" in entry["models"] and "gemini-embedding-001" in entry["models"]
    assert "aqa" not in entry["models"]


def test_embed(gem: GeminiFake, cli: Any) -> None:
    res = cli("embed", "--json", "-m", "gemini-embedding-001", "one", "two")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["dimensions"] == 8 and len(data["vectors"]) == 2
    assert gem.last.path.endswith(":batchEmbedContents")


def test_subprocess_bad_key_fails_cleanly(gem: GeminiFake, configure: Any, run_synapse: Any) -> None:
    configure(gemini_key="AIzaSyDefinitelyWrong000000000000")
    res = run_synapse("chat", "-m", MODEL, "hi")
    assert res.code == 1
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.err
    assert lines[0].startswith("synapse: Google Gemini rejected the key in gemini_key: check it at aistudio.google.com")
    assert "AIzaSyDefinitelyWrong" not in res.err
    assert res.out == ""
    assert len(gem.requests) == 1


def test_subprocess_chat_succeeds(gem: GeminiFake, run_synapse: Any) -> None:
    res = run_synapse("chat", "-m", MODEL, "--no-stream", "from a subprocess")
    assert res.code == 0, res.err
    assert res.out == "Gemini heard: from a subprocess\n"
