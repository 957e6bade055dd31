"""API key rules, bad input, and a client that leaves mid-stream, over plain HTTP (httpx)
so the exact status, headers and body can be checked."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import httpx2 as httpx  # the HTTP client the official SDKs use
import pytest

from synapse import settings as settings_mod
from synapse.gateway import keys
from tests.fakes.anthropic import AnthropicFake
from tests.fakes.base import FakeReply
from tests.gateway.conftest import ledger_rows

pytestmark = pytest.mark.database

HI = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
HI_CLAUDE = {"model": "claude-sonnet-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def both(anthropic: AnthropicFake, openai: Any, configure: Any) -> tuple[AnthropicFake, Any]:
    configure(**anthropic.settings(), **openai.settings(), max_retries=0)
    return anthropic, openai


def post(gateway: Any, path: str, body: Any, key: str | None = None, **headers: str) -> httpx.Response:
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(gateway.url + path, content=content, headers={"content-type": "application/json", **headers},
                      timeout=10)


# --- key rules -------------------------------------------------------------------------------------


def test_missing_and_wrong_keys_are_401_in_each_apis_shape(gateway: Any, both: Any) -> None:
    r = post(gateway, "/v1/chat/completions", HI)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key" and "no API key" in r.json()["error"]["message"]
    r = post(gateway, "/v1/messages", HI_CLAUDE, **{"x-api-key": "sk-ant-api03-a-provider-key-0000"})
    assert r.status_code == 401
    assert r.json() == {"type": "error", "error": {"type": "authentication_error", "message": r.json()["error"]["message"]}}
    assert "sk-syn-" in r.json()["error"]["message"] and "sk-ant-api03-a-provider-key-0000" not in r.text


def test_a_key_works_as_bearer_or_x_api_key(gateway: Any, both: Any, make_key: Any) -> None:
    key = make_key()
    assert post(gateway, "/v1/chat/completions", HI, key).status_code == 200
    assert post(gateway, "/v1/messages", HI_CLAUDE, **{"x-api-key": key, "anthropic-version": "2023-06-01"}).status_code == 200


def test_revoked_and_expired_keys_stop_working(gateway: Any, both: Any, make_key: Any) -> None:
    key = make_key("short-lived", expires_days=0.5 / 86400)
    revoked = make_key("gone")
    assert post(gateway, "/v1/chat/completions", HI, revoked).status_code == 200
    keys.revoke("gone", settings_mod.load())
    r = post(gateway, "/v1/chat/completions", HI, revoked)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    time.sleep(0.6)
    r = post(gateway, "/v1/chat/completions", HI, key)
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    statuses = {k["name"]: k["status"] for k in keys.list_keys(settings_mod.load())}
    assert statuses == {"short-lived": "expired", "gone": "revoked"}


def test_model_patterns_are_enforced(gateway: Any, both: Any, make_key: Any, configure: Any) -> None:
    key = make_key("claude-only", models="claude-*, fast")
    configure(model_aliases={"fast": "gpt-4o-mini"})
    assert post(gateway, "/v1/chat/completions", {**HI, "model": "claude-haiku-4-5"}, key).status_code == 200
    assert post(gateway, "/v1/chat/completions", {**HI, "model": "fast"}, key).status_code == 200  # the alias is allowed
    r = post(gateway, "/v1/chat/completions", HI, key)
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
    r = post(gateway, "/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}, key)
    assert r.status_code == 403
    listed = httpx.get(gateway.url + "/v1/models", headers={"authorization": f"Bearer {key}"}).json()["data"]
    assert listed and all(m["id"].startswith("claude-") or m["id"] == "fast" for m in listed)


def test_a_spent_budget_is_429_that_says_so(gateway: Any, both: Any, make_key: Any) -> None:
    key = make_key("tiny", budget_usd=0.0000001)
    assert post(gateway, "/v1/chat/completions", HI, key).status_code == 200  # nothing spent yet
    ledger_rows()  # the ledger has written (and counted) that call
    r = post(gateway, "/v1/messages", HI_CLAUDE, key)
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "rate_limit_error" and "budget" in r.json()["error"]["message"]
    assert keys.list_keys(settings_mod.load())[0]["status"] == "budget spent"


def test_a_rate_limit_is_429_with_the_wait_and_counts_only_calls(gateway: Any, both: Any, make_key: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """One instance (no Redis) counts a key's requests a minute itself; listing models is free."""
    from synapse.scale import limits

    monkeypatch.setattr(limits, "_clock", lambda: 1_765_000_050.0)  # mid-minute, whenever the test runs
    key = make_key("paced", rpm=2)
    assert get_models(gateway, key) and get_models(gateway, key) and get_models(gateway, key)
    assert post(gateway, "/v1/chat/completions", HI, key).status_code == 200
    assert post(gateway, "/v1/messages", HI_CLAUDE, key).status_code == 200
    r = post(gateway, "/v1/chat/completions", HI, key)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert "2 requests a minute" in r.json()["error"]["message"]
    assert int(r.headers["retry-after"]) == 30
    assert post(gateway, "/v1/chat/completions", HI, make_key("other")).status_code == 200  # per key


def get_models(gateway: Any, key: str) -> bool:
    return httpx.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_open_on_loopback_needs_the_setting_and_a_loopback_host(gateway: Any, both: Any, configure: Any) -> None:
    assert post(gateway, "/v1/chat/completions", HI).status_code == 401  # closed by default, on loopback too
    configure(gateway_open_on_loopback=True)
    assert post(gateway, "/v1/chat/completions", HI).status_code == 200
    assert post(gateway, "/v1/chat/completions", HI, host="evil.example").status_code == 401  # DNS rebinding
    (row,) = ledger_rows()
    assert row["key_name"] is None


def test_authenticate_for_other_routes(both: Any, make_key: Any) -> None:
    key = make_key("rest")
    info = keys.authenticate({"x-api-key": key})
    assert info is not None and info.name == "rest" and info.context.key == "rest"
    assert keys.authenticate({"authorization": "Bearer sk-syn-nope"}) is None
    assert keys.authenticate({}) is None


def test_a_key_never_shows_up_in_logs_ledger_errors_or_pages(gateway: Any, both: Any, make_key: Any,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = make_key("secret")
    post(gateway, "/v1/chat/completions", HI, key)
    post(gateway, "/v1/chat/completions", {**HI, "model": "gpt-unknown"}, key)
    errors = [post(gateway, "/v1/chat/completions", b"{bad", key).text,
              post(gateway, "/v1/messages", {"model": 5}, key).text]
    rows = ledger_rows()
    assert len(rows) == 2
    assert key not in json.dumps(rows, default=str)
    assert all(key not in e for e in errors)
    assert key not in caplog.text
    web = httpx.Client(base_url=gateway.url)
    assert key not in web.get("/settings/keys").text
    assert key not in web.get("/api/keys").text and "sk-syn-" in web.get("/api/keys").text  # the prefix only


def test_cli_prints_the_key_alone_and_lists_spend(both: Any, cli: Any) -> None:
    made = cli("keys", "create", "ci", "--models", "gpt-*", "--budget-usd", "5")
    assert made.code == 0 and made.out.startswith("sk-syn-") and made.out.count("\n") == 1
    assert "shown only now" in made.err
    key = made.out.strip()
    listed = cli("keys", "list", "--json")
    (entry,) = json.loads(listed.out)
    assert entry["name"] == "ci" and entry["budget_usd"] == 5 and entry["models"] == ["gpt-*"]
    assert key not in listed.out and entry["prefix"] == key[:12] + "…"
    assert cli("keys", "revoke", "ci").code == 0
    assert "revoked" in cli("keys", "list").out
    bad = cli("keys", "create", "no spaces allowed")
    assert bad.code != 0 and "key name" in bad.err


# --- bad input ----------------------------------------------------------------------------------------


def test_malformed_json_and_wrong_types_are_400_naming_the_field(gateway: Any, both: Any, make_key: Any) -> None:
    key = make_key()
    r = post(gateway, "/v1/chat/completions", b'{"model": "gpt-4o-mini", "messages": [', key)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = post(gateway, "/v1/messages", b"[1, 2]", key)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = post(gateway, "/v1/chat/completions", {"model": "claude-sonnet-4-5", "messages": "hi"}, key)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = post(gateway, "/v1/chat/completions", {**HI, "model": "claude-sonnet-4-5", "max_tokens": "ten"}, key)
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    r = post(gateway, "/v1/messages", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}, key)
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
    r = post(gateway, "/v1/chat/completions", {"messages": []}, key)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    # relayed as they are to an OpenAI-protocol provider, which checks the types and blames the field
    for field, value in (("messages", "hi"), ("temperature", "hot"), ("max_tokens", "ten")):
        r = post(gateway, "/v1/chat/completions", {**HI, "model": "gpt-4o-mini", field: value}, key)
        error = r.json()["error"]
        assert r.status_code == 400 and error["param"] == field and error["type"] == "invalid_request_error", r.text
        assert f"Invalid type for '{field}'" in error["message"]


def test_a_body_over_the_limit_is_413(gateway: Any, both: Any, make_key: Any, configure: Any) -> None:
    key = make_key()
    configure(gateway_max_body_bytes=2048)
    r = post(gateway, "/v1/chat/completions", {**HI, "messages": [{"role": "user", "content": "x" * 4096}]}, key)
    assert r.status_code == 413 and "2,048 bytes" in r.json()["error"]["message"]
    assert post(gateway, "/v1/chat/completions", HI, key).status_code == 200


def test_unknown_fields_are_ignored(gateway: Any, both: Any, make_key: Any) -> None:
    claude, _ = both
    key = make_key()
    r = post(gateway, "/v1/chat/completions", {**HI, "model": "claude-sonnet-4-5", "frobnicate": {"x": 1},
                                               "logit_bias": {"1": 2}}, key)
    assert r.status_code == 200 and "frobnicate" not in claude.last.json()
    r = post(gateway, "/v1/messages", {**HI_CLAUDE, "model": "gpt-4o-mini", "not_a_field": True}, key)
    assert r.status_code == 200


def test_unknown_paths_and_methods(gateway: Any, both: Any, make_key: Any) -> None:
    key = make_key()
    r = httpx.get(gateway.url + "/v1/completions", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
    r = httpx.get(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 405


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5"], ids=["relay", "canonical"])
def test_a_client_that_leaves_mid_stream_cancels_the_upstream_and_is_recorded(
        gateway: Any, both: Any, make_key: Any, model: str) -> None:
    claude, oai = both
    fake = oai if model.startswith("gpt") else claude
    fake.reply(FakeReply(text=" ".join(["word"] * 40), event_delay=0.05))
    key = make_key()
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "talk"}]}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {key}"}, timeout=10) as r:
        assert r.status_code == 200
        got = b""
        for chunk in r.iter_raw():
            got += chunk
            if got.count(b"data:") >= 3:
                break  # leave after a few events: the connection closes
    deadline = time.monotonic() + 5
    while fake.aborted == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.aborted == 1  # the upstream request was cancelled, not read to the end
    deadline = time.monotonic() + 5
    rows: list[Any] = []
    while not rows and time.monotonic() < deadline:
        rows = ledger_rows()
        time.sleep(0.02)
    (row,) = rows
    assert row["outcome"] == "cancelled" and row["stream"]


def test_an_unknown_model_is_404_naming_the_known_prefixes(gateway: Any, both: Any, make_key: Any,
                                                           configure: Any) -> None:
    configure(ollama_base_url="http://127.0.0.1:9")  # nothing listens there: the bare name has nowhere to go
    key = make_key()
    r = post(gateway, "/v1/chat/completions", {**HI, "model": "no-such-model"}, key)
    assert r.status_code == 404 and "Known prefixes" in r.json()["error"]["message"]
    r = post(gateway, "/v1/messages", {**HI_CLAUDE, "model": "gemini-2.5-flash"}, key)
    assert r.status_code == 404 and "gemini_key" in r.json()["error"]["message"]  # not set up: says what to set


def test_usage_by_key(gateway: Any, both: Any, make_key: Any, cli: Any) -> None:
    post(gateway, "/v1/chat/completions", HI, make_key("alpha"))
    post(gateway, "/v1/messages", HI_CLAUDE, make_key("beta"))
    post(gateway, "/v1/messages", HI_CLAUDE, make_key("beta2"))
    ledger_rows()
    out = cli("usage", "--by", "key", "--json")
    by_key = {r["key"]: r["calls"] for r in json.loads(out.out)}
    assert by_key == {"alpha": 1, "beta": 1, "beta2": 1}
    text = cli("usage", "--by", "key").out
    assert "By API key:" in text and "alpha" in text and "By model:" not in text


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5"], ids=["relay", "canonical"])
def test_events_are_passed_on_as_they_arrive(gateway: Any, both: Any, make_key: Any, model: str) -> None:
    claude, oai = both
    fake = oai if model.startswith("gpt") else claude
    step = threading.Semaphore(1)  # the fake sends each word only after the client has the one before
    fake.reply(FakeReply(text="a b c d e f", step=step))
    words = 0
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", timeout=30,
                      json={"model": model, "stream": True, "messages": [{"role": "user", "content": "go"}]},
                      headers={"authorization": f"Bearer {make_key()}"}) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and '"content":"' in line.replace(" ", "") and '"content":""' not in line.replace(" ", ""):
                words += 1
                step.release()
    assert words == 6
    assert fake.step_timeouts == 0  # every word reached the client before the next was sent: nothing held back


def test_a_key_made_by_another_process_works_at_once(gateway: Any, both: Any, make_key: Any, run_synapse: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "TABLE_TTL", 600.0)  # the copy of the table stays "fresh": only a miss re-reads it
    assert post(gateway, "/v1/chat/completions", HI, make_key("first")).status_code == 200  # the table is loaded
    made = run_synapse("keys", "create", "from-the-cli")
    assert made.code == 0, made.err
    time.sleep(keys.MISS_RELOAD + 0.05)
    assert post(gateway, "/v1/chat/completions", HI, made.out.strip()).status_code == 200
    assert post(gateway, "/v1/chat/completions", HI, "sk-syn-wrong").status_code == 401


def test_wrong_types_inside_messages_are_400_not_500(gateway: Any, both: Any, make_key: Any) -> None:
    key = make_key()
    for messages in ([{"role": "user", "content": [5]}],
                     [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,abc"}}]}],
                     [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
                     [{"role": "assistant", "tool_calls": "call it"}, {"role": "user", "content": "x"}]):
        r = post(gateway, "/v1/chat/completions", {"model": "claude-sonnet-4-5", "messages": messages}, key)
        assert r.status_code == 400, (messages, r.text)
        assert str(r.json()["error"]["param"]).startswith("messages"), r.text
    r = post(gateway, "/v1/messages", {**HI_CLAUDE, "model": "gpt-4o-mini",
                                       "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, key)
    assert r.status_code == 400 and "missing field" in r.json()["error"]["message"]
