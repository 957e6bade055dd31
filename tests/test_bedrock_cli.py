"""AWS Bedrock through the `synapse` command (in-process and as a real subprocess)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import provider_fake
from tests.fakes.base import estimate_tokens
from tests.fakes.bedrock import BedrockFake, BedrockReply

MODEL = "bedrock.amazon.nova-pro-v1:0"


@pytest.fixture(scope="module")
def bedrock_server():
    yield from provider_fake(BedrockFake)


@pytest.fixture
def fake(bedrock_server, configure):
    bedrock_server.reset()
    configure(**bedrock_server.settings(), max_retries=1)
    return bedrock_server


def test_chat_json_streams_by_default(fake, cli):
    res = cli("chat", "-m", MODEL, "--json", "hi", "there")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["text"] == "Bedrock says: hi there"
    assert (data["provider"], data["model"], data["stop_reason"]) == ("bedrock", MODEL, "end_turn")
    assert data["usage"] == {
        "input_tokens": estimate_tokens("hi there"), "output_tokens": estimate_tokens(data["text"]),
        "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
    }
    assert fake.raw_paths == ["/model/amazon.nova-pro-v1%3A0/converse-stream"]


def test_chat_plain_text_no_stream_with_options(fake, cli):
    res = cli("chat", "-m", MODEL, "--no-stream", "-s", "Be terse.", "--max-tokens", "64", "--temperature", "0", "hello")
    assert res.code == 0, res.err
    assert res.out == "Bedrock says: hello\n"
    body = fake.last.json()
    assert body["system"] == [{"text": "Be terse."}]
    assert body["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.0}
    assert fake.raw_paths == ["/model/amazon.nova-pro-v1%3A0/converse"]


def test_chat_streamed_text_to_stdout(fake, cli):
    res = cli("chat", "-m", MODEL, "stream", "this")
    assert res.code == 0 and res.out == "Bedrock says: stream this\n"


def test_models_lists_foundation_models_and_profiles(fake, cli):
    res = cli("models", "--json")
    assert res.code == 0, res.err
    (entry,) = [e for e in json.loads(res.out) if e["provider"] == "bedrock"]
    assert "bedrock.amazon.nova-pro-v1:0" in entry["models"]
    assert "bedrock.us.anthropic.claude-sonnet-4-5-20250929-v1:0" in entry["models"]
    assert "bedrock.amazon.titan-embed-text-v2:0" in entry["models"]


def test_embed(fake, cli):
    res = cli("embed", "--json", "-m", "amazon.titan-embed-text-v2:0", "hello", "world")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["dimensions"] == 1024 and len(data["vectors"]) == 2
    assert len(fake.requests) == 2


def test_errors_are_one_line(fake, cli, configure):
    fake.reply(BedrockReply(text="partial", error_after_events=1, exception_type="throttlingException",
                            exception_message="Too many tokens, please wait before trying again."))
    res = cli("chat", "-m", MODEL, "hi")
    assert res.code == 1
    assert res.err.count("\n") == 1 and res.err.startswith("synapse: AWS Bedrock rate limit reached")
    configure(bedrock_api_key="absk-THISKEYISWRONG000")
    res = cli("chat", "-m", MODEL, "--json", "hi")
    assert res.code == 1
    assert res.err.strip() == (
        "synapse: AWS Bedrock rejected the key in bedrock_api_key: check it at "
        "docs.aws.amazon.com/bedrock/latest/userguide/api-keys.html "
        "(Authentication failed: Please make sure your API Key is valid.)"
    )
    assert "THISKEYISWRONG000" not in res.err + res.out


def test_subprocess_success_and_failure(fake, run_synapse, configure):
    res = run_synapse("chat", "-m", MODEL, "--no-stream", "from a subprocess")
    assert res.code == 0, res.err
    assert res.out == "Bedrock says: from a subprocess\n"
    fake.no_access.add("amazon.nova-pro-v1:0")
    res = run_synapse("chat", "-m", MODEL, "hi")
    assert res.code == 1
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.err
    assert lines[0].startswith("synapse: AWS Bedrock refused access") and "us-east-1" in lines[0]
