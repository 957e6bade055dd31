"""The `synapse` command against the Ollama fake: chat, models, embed, and one-line errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import provider_fake
from tests.fakes.base import FakeReply, estimate_tokens, free_port
from tests.fakes.ollama import OllamaFake


@pytest.fixture(scope="module")
def ollama_server():
    yield from provider_fake(OllamaFake)


@pytest.fixture
def fake(ollama_server, configure):
    ollama_server.reset()
    configure(ollama_base_url=ollama_server.url, max_retries=0)
    return ollama_server


def test_chat_json_streams_by_default(fake, cli):
    res = cli("chat", "-m", "llama3.2", "--json", "hi", "there")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["text"] == "Echo: hi there" and data["provider"] == "ollama" and data["model"] == "llama3.2"
    assert data["stop_reason"] == "end_turn"
    assert data["usage"] == {
        "input_tokens": estimate_tokens("hi there"),
        "output_tokens": estimate_tokens("Echo: hi there"),
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert fake.last.json()["stream"] is True


def test_chat_plain_text_with_options(fake, cli):
    res = cli("chat", "-m", "ollama.qwen3:0.6b", "-s", "Be brief.", "--max-tokens", "64", "--temperature", "0", "--no-stream", "question")
    assert (res.code, res.out, res.err) == (0, "Echo: question\n", "")
    assert fake.last.json() == {
        "model": "qwen3:0.6b",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "question"}],
        "stream": False,
        "options": {"num_predict": 64, "temperature": 0.0},
    }


def test_chat_prompt_from_stdin_streams_text(fake, cli):
    res = cli("chat", "-m", "llama3.2", "-", stdin="from stdin")
    assert res.code == 0 and res.out == "Echo: from stdin\n"


def test_chat_default_model_setting(fake, cli, configure):
    configure(model="llama3.2")
    res = cli("chat", "--json", "hi")
    assert res.code == 0 and json.loads(res.out)["model"] == "llama3.2"


def test_unknown_bare_name_is_one_line(fake, cli):
    res = cli("chat", "-m", "mistral", "hi")
    assert res.code == 2 and res.out == ""
    assert res.err.count("\n") == 1 and res.err.startswith("synapse: 'mistral' matches no provider prefix")
    assert "ollama.<name>" in res.err


def test_mid_stream_drop_in_the_cli(fake, cli):
    fake.reply(FakeReply(text="one two three four", break_after_events=2))
    res = cli("chat", "-m", "llama3.2", "hi")
    assert res.code == 1
    assert res.out == "one two "
    assert "(mid-stream)" in res.err and res.err.count("\n") == 1


def test_models_lists_ollama_when_its_url_is_set(fake, cli):
    res = cli("models", "--json")
    assert res.code == 0
    (entry,) = [e for e in json.loads(res.out) if e["provider"] == "ollama"]
    assert entry["models"] == ["llama3.2", "qwen3:0.6b", "llava", "ollama.gpt-oss:20b", "nomic-embed-text"]
    res = cli("models")
    assert "Ollama (Local):\n  llama3.2\n" in res.out


def test_embed_with_ollama_model(fake, cli):
    res = cli("embed", "--json", "-m", "ollama.nomic-embed-text", "hello", "world")
    assert res.code == 0
    data = json.loads(res.out)
    assert data["dimensions"] == fake.embedding_dim
    assert data["vectors"] == [fake.vector("hello"), fake.vector("world")]


def test_subprocess_unknown_model_exits_non_zero_without_traceback(fake, run_synapse):
    res = run_synapse("chat", "-m", "mistral", "hi")
    assert res.code == 2 and res.out == ""
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and "Known prefixes" in lines[0] and "Traceback" not in res.err


def test_subprocess_unreachable_ollama(configure, run_synapse):
    url = f"http://127.0.0.1:{free_port()}"
    configure(ollama_base_url=url, max_retries=0)
    res = run_synapse("chat", "-m", "ollama.llama3.2", "hi")
    assert res.code == 1
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.err
    assert lines[0].startswith(f"synapse: Ollama cannot be reached at {url}")
