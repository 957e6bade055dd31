"""The fake Gemini service itself speaks the real wire: raw HTTP against it, no Synapse code."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import aiohttp
import pytest

from tests.fakes.gemini import GeminiFake, GeminiReply

KEY = "AIza-test-key-gemini"


@pytest.fixture(scope="module")
def fake() -> Iterator[GeminiFake]:
    server = GeminiFake().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gem(fake: GeminiFake) -> GeminiFake:
    fake.reset()
    return fake


async def post(gem: GeminiFake, path: str, body: object, headers: dict[str, str] | None = None,
               params: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    hdrs = {"x-goog-api-key": KEY, "Content-Type": "application/json"} if headers is None else headers
    async with aiohttp.ClientSession() as s:
        async with s.post(gem.url + path, data=json.dumps(body), headers=hdrs, params=params) as r:
            return r.status, dict(r.headers), await r.read()


GEN = "/v1beta/models/gemini-2.5-flash:generateContent"


async def test_snake_case_and_url_safe_base64_are_accepted(gem: GeminiFake) -> None:
    data = bytes([251, 255, 254, 62, 63]) * 10  # encodes with + and / in standard base64
    assert "+" in base64.b64encode(data).decode() or "/" in base64.b64encode(data).decode()
    body = {
        "system_instruction": {"parts": [{"text": "sys"}]},
        "contents": [{"role": "user", "parts": [
            {"text": "look"},
            {"inline_data": {"mime_type": "image/png", "data": base64.urlsafe_b64encode(data).decode()}},
        ]}],
        "generation_config": {"max_output_tokens": 50, "stop_sequences": ["x"]},
    }
    status, _, raw = await post(gem, GEN, body)
    assert status == 200, raw
    assert json.loads(raw)["candidates"][0]["content"]["parts"] == [{"text": "Gemini heard: look"}]


async def test_auth_header_query_key_missing_and_wrong(gem: GeminiFake) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    status, _, _ = await post(gem, GEN, body, headers={"Content-Type": "application/json"}, params={"key": KEY})
    assert status == 200
    status, _, raw = await post(gem, GEN, body, headers={"Content-Type": "application/json"})
    assert status == 403 and json.loads(raw)["error"]["status"] == "PERMISSION_DENIED"
    status, headers, raw = await post(gem, GEN, body, headers={"x-goog-api-key": "AIzaWrong"})
    err = json.loads(raw)["error"]
    assert status == 400 and err["status"] == "INVALID_ARGUMENT"
    assert err["details"][0]["reason"] == "API_KEY_INVALID"
    assert headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": [{"text": "x"}]}], "max_tokens": 5}, 'Unknown name "max_tokens"'),
        ({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
          "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
              "type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}}]}]},
         'Unknown name "additionalProperties"'),
        ({"contents": [{"role": "user", "parts": [{"functionResponse": {"response": {"a": 1}}}]}]},
         "Name cannot be empty"),
        ({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]},
         "Base64 decoding failed"),
    ],
)
async def test_invalid_requests_get_real_400s(gem: GeminiFake, body: dict, needle: str) -> None:
    status, _, raw = await post(gem, GEN, body)
    assert status == 400
    assert needle in json.loads(raw)["error"]["message"]


async def test_stream_framing_is_crlf_data_only_without_done(gem: GeminiFake) -> None:
    gem.reply(GeminiReply(text="alpha beta gamma delta", reasoning="r", cache_read_tokens=3))
    status, headers, raw = await post(gem, "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                                      {"contents": [{"parts": [{"text": "hi"}]}]}, params={"alt": "sse"})
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    assert headers["Content-Disposition"] == "attachment"
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b"" and b"[DONE]" not in raw and b"event:" not in raw
    chunks = [json.loads(e[len(b"data: "):]) for e in events[:-1]]
    assert all(e.startswith(b"data: ") for e in events[:-1])
    assert all("usageMetadata" in c for c in chunks)
    assert [c["candidates"][0].get("finishReason") for c in chunks][-1] == "STOP"
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    assert chunks[-1]["candidates"][0]["content"]["parts"] == [{"text": ""}]
    assert chunks[-1]["usageMetadata"]["cachedContentTokenCount"] == 3


async def test_stream_without_alt_sse_is_a_json_array(gem: GeminiFake) -> None:
    status, _, raw = await post(gem, "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                                {"contents": [{"parts": [{"text": "hi"}]}]})
    assert status == 200
    chunks = json.loads(raw)
    assert isinstance(chunks, list) and chunks[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_in_stream_error_is_raw_json_without_data_prefix(gem: GeminiFake) -> None:
    gem.reply(GeminiReply(text="a b c", error_after_events=1))
    _, _, raw = await post(gem, "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                           {"contents": [{"parts": [{"text": "hi"}]}]}, params={"alt": "sse"})
    first, rest = raw.split(b"\r\n\r\n", 1)
    assert first.startswith(b"data: ")
    assert not rest.startswith(b"data:")
    assert json.loads(rest)["error"]["status"] == "INTERNAL"


async def test_count_tokens_and_get_model(gem: GeminiFake) -> None:
    status, _, raw = await post(gem, "/v1beta/models/gemini-2.5-flash:countTokens",
                                {"contents": [{"parts": [{"text": "twelve chars"}]}]})
    assert status == 200 and json.loads(raw)["totalTokens"] == 3
    async with aiohttp.ClientSession() as s:
        async with s.get(gem.url + "/v1beta/models/gemini-2.5-pro", headers={"x-goog-api-key": KEY}) as r:
            assert r.status == 200 and (await r.json())["name"] == "models/gemini-2.5-pro"
        async with s.get(gem.url + "/v1beta/models", params={"pageSize": "4"}, headers={"x-goog-api-key": KEY}) as r:
            page = await r.json()
            assert len(page["models"]) == 4 and page["nextPageToken"]
