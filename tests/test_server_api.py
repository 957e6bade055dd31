"""The /api JSON API of the web app, driven over real HTTP against an in-process server.

Provider adapters are replaced by stubs that follow the Adapter contract (`verify()`
returns ModelInfo or raises typed errors), so every status path is deterministic.
The real adapters against the fake provider servers are covered in
test_server_fakes.py and the browser tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from synapse import settings as settings_mod
from synapse.errors import (
    AuthenticationError,
    PermissionDeniedError,
    ProviderNotInstalledError,
    UpstreamUnavailableError,
)
from synapse.providers.catalog import PROVIDERS, ProviderSpec
from synapse.server.app import create_app
from synapse.server.auth import UserStore
from synapse.types import ModelInfo
from tests.browser.helpers import ApiClient, ServerThread

ANTHROPIC_KEY = "sk-ant-api03-SECRETvalue1234567890abcdWXYZ"
OPENAI_KEY = "sk-proj-SECRETopenai0987654321QRST"
BEDROCK_KEY = "ABSKsecretBedrockKey1234567890LMNO"


class StubAdapter:
    def __init__(self, spec: ProviderSpec, config: Any, behaviour: Any, calls: list[str]) -> None:
        self.spec, self.config, self.behaviour, self.calls = spec, config, behaviour, calls

    def info(self, mid: str, label: str = "", embedding: bool = False) -> ModelInfo:
        return ModelInfo(self.spec.route_prefix + mid, self.spec.id, mid, label, embedding)

    async def verify(self) -> list[ModelInfo]:
        self.calls.append(self.spec.id)
        b = self.behaviour
        if callable(b):
            b = b(self)
        if isinstance(b, tuple) and b and b[0] == "sleep":
            await asyncio.sleep(b[1])
            b = b[2]
        if isinstance(b, tuple) and b and b[0] == "wait":  # until the test sets the event
            await asyncio.to_thread(b[1].wait, 10)
            b = b[2]
        if isinstance(b, BaseException):
            raise b
        return [self.info(*m) if isinstance(m, tuple) else self.info(m) for m in b]

    async def list_inference_profiles(self) -> list[dict[str, Any]]:
        return [
            {"id": "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "name": "US Claude Sonnet 4.5",
             "arn": "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
        ]


class Stubs:
    """Per-provider behaviour: a list of model ids, an exception, ("sleep", s, then) or
    ("wait", threading.Event, then)."""

    def __init__(self) -> None:
        self.behaviour: dict[str, Any] = {}
        self.calls: list[str] = []

    def factory(self, spec: ProviderSpec, settings: Mapping[str, Any]) -> StubAdapter:
        from synapse.providers import not_configured

        config = spec.configure(settings)
        if not spec.is_configured(config):
            raise not_configured(spec)
        default = ["claude-sonnet-4-5-20250929", "claude-haiku-4-5"] if spec.id == "anthropic" else ["model-1"]
        return StubAdapter(spec, config, self.behaviour.get(spec.id, default), self.calls)


@pytest.fixture(scope="module")
def stubs() -> Stubs:
    return Stubs()


@pytest.fixture(scope="module")
def server(stubs: Stubs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    app = create_app("127.0.0.1", adapter_factory=stubs.factory, check_timeout=0.5)
    srv = ServerThread(app).start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: ServerThread, stubs: Stubs, synapse_env: Path) -> ApiClient:
    stubs.behaviour.clear()
    stubs.calls.clear()
    board = server.server.config.app.state.board if hasattr(server.server.config.app, "state") else None
    if board is not None:
        for spec in PROVIDERS:
            board.forget(spec.id)
    return ApiClient(server.url)


def cards(api: ApiClient) -> dict[str, dict[str, Any]]:
    r = api.get("/api/providers")
    assert r.status == 200, r
    return {c["id"]: c for c in r.json()["providers"]}


def file_settings(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / "settings.json").read_text())


# --- listing --------------------------------------------------------------------------------


def test_providers_listed_with_fields_hints_and_links(api: ApiClient) -> None:
    c = cards(api)
    assert list(c) == ["anthropic", "openai", "gemini", "xai", "deepseek", "bedrock", "oaic", "ollama", "locv1", "hf"]
    assert [c[p]["label"] for p in c] == [
        "Anthropic Claude", "OpenAI", "Google Gemini", "xAI Grok", "DeepSeek", "AWS Bedrock",
        "OpenAI Compatible", "Ollama (Local)", "Local V1 Compatible", "Hugging Face (Local)",
    ]
    assert {p: c[p]["key_hint"] for p in ("anthropic", "openai", "gemini", "xai", "bedrock")} == {
        "anthropic": "sk-ant-…", "openai": "sk-…", "gemini": "AIza…", "xai": "xai-…", "bedrock": "absk-…",
    }
    assert c["anthropic"]["console_label"] == "Anthropic Console"
    assert c["gemini"]["console_url"].startswith("https://aistudio.google.com")
    assert [f["label"] for f in c["bedrock"]["fields"]] == [
        "API Key", "AWS Region", "Inference Profile", "Embedding Model", "Runtime URL", "Control-plane URL"]
    assert [f["setting"] for f in c["bedrock"]["fields"] if f["advanced"]] == ["bedrock_runtime_url", "bedrock_control_url"]
    # every cloud card has its base-URL override under Advanced, and nothing else is there
    advanced = {p: [(f["setting"], f["kind"], f["required"]) for f in c[p]["fields"] if f["advanced"]]
                for p in ("anthropic", "openai", "gemini", "xai", "deepseek")}
    assert advanced == {
        "anthropic": [("anthropic_base_url", "url", False)], "openai": [("openai_base_url", "url", False)],
        "gemini": [("gemini_base_url", "url", False)], "xai": [("grok_base_url", "url", False)],
        "deepseek": [("deepseek_base_url", "url", False)],
    }
    assert c["openai"]["fields"][1]["placeholder"] == "https://api.openai.com/v1"
    assert [f["label"] for f in c["locv1"]["fields"]] == ["Base URL", "API Key", "Model Names", "Embedding Model Names"]
    assert c["locv1"]["fields"][1]["required"] is False  # the page adds "(optional)" once
    assert [f["label"] for f in c["oaic"]["fields"]] == ["API Key", "Base URL", "Model Names", "Embedding Model Names"]
    assert [f["label"] for f in c["ollama"]["fields"]] == ["Base URL"]
    assert [f["setting"] for f in c["locv1"]["fields"]] == [
        "local_compatible_base_url", "local_compatible_key", "local_compatible_models", "local_compatible_embed_models"]
    assert all(card["status"]["state"] == "not_configured" for card in c.values())
    # Ollama has a default base URL but does not count as connected until saved.
    assert c["ollama"]["fields"][0]["value"] == "http://127.0.0.1:11434"
    assert c["ollama"]["configured"] is False
    r = api.get("/api/models")
    assert r.json() == {"model": "", "model_warning": "", "groups": [], "pending": False}


def test_unknown_provider_is_404(api: ApiClient) -> None:
    r = api.put("/api/providers/nope", {"x": "y"})
    assert r.status == 404 and "unknown provider 'nope'" in r.json()["detail"]
    assert api.get("/api/providers/nope").status == 404


# --- save, status, models ---------------------------------------------------------------------


def test_save_key_checks_in_background_and_lists_models(api: ApiClient, stubs: Stubs, synapse_env: Path) -> None:
    check_may_end = threading.Event()
    stubs.behaviour["anthropic"] = ("wait", check_may_end,
                                    ["claude-sonnet-4-5-20250929", ("claude-opus-4-5", "Claude Opus 4.5")])
    r = api.put("/api/providers/anthropic", {"anthropic_key": ANTHROPIC_KEY})
    assert r.status == 200, r
    card = r.json()
    assert card["status"]["state"] == "checking"  # answered while the check still runs
    assert file_settings(synapse_env)["anthropic_key"] == ANTHROPIC_KEY
    assert stat.S_IMODE((synapse_env / "settings.json").stat().st_mode) == 0o600
    listing = api.get("/api/providers").json()
    assert listing["pending"] is True
    check_may_end.set()
    card = api.wait_for("anthropic")
    assert card["status"]["state"] == "ok" and card["status"]["models"] == 2
    field = card["fields"][0]
    assert field["value"] == "" and field["masked"] == "sk-ant-…WXYZ" and field["saved"] is True
    models = api.get("/api/models").json()
    assert models["groups"] == [
        {
            "provider": "anthropic",
            "label": "Anthropic Claude",
            "models": [
                # labelled from the catalog's "best for" notes (dated id matches its family); every Claude reads images
                {"id": "claude-sonnet-4-5-20250929", "label": "best balance of quality, speed and cost", "embedding": False,
                 "images": True},
                {"id": "claude-opus-4-5", "label": "Claude Opus 4.5 — hardest reasoning and long agentic work", "embedding": False,
                 "images": True},
            ],
        }
    ]
    assert stubs.calls == ["anthropic"]
    # cached: reading again does not check again
    cards(api)
    assert stubs.calls == ["anthropic"]


def test_save_with_wait_returns_final_state_and_key_never_echoed(api: ApiClient, synapse_env: Path) -> None:
    r = api.put("/api/providers/openai?wait=true", {"openai_key": OPENAI_KEY})
    assert r.status == 200 and r.json()["status"]["state"] == "ok"
    for path in ("/api/providers", "/api/providers/openai", "/api/models", "/api/settings", "/settings/models"):
        body = api.get(path).text
        assert OPENAI_KEY not in body and "SECRETopenai" not in body, path
    assert OPENAI_KEY not in r.text


def test_empty_secret_keeps_saved_key(api: ApiClient, synapse_env: Path) -> None:
    api.put("/api/providers/oaic?wait=1", {
        "openai_compatible_key": "sk-or-v1-abcdefabcdef1234", "openai_compatible_base_url": "https://openrouter.ai/api/v1/",
        "openai_compatible_models": "a/b-1, c/d-2", "openai_compatible_embed_models": ""})
    r = api.put("/api/providers/oaic", {"openai_compatible_key": "", "openai_compatible_models": ["x-1", "y-2"]})
    assert r.status == 200, r
    saved = file_settings(synapse_env)
    assert saved["openai_compatible_key"] == "sk-or-v1-abcdefabcdef1234"
    assert saved["openai_compatible_base_url"] == "https://openrouter.ai/api/v1"  # trailing slash trimmed
    assert saved["openai_compatible_models"] == "x-1, y-2"
    assert "openai_compatible_embed_models" not in saved


def test_models_fall_back_to_catalog_and_card_model_names(api: ApiClient, stubs: Stubs) -> None:
    stubs.behaviour["oaic"] = []  # the provider lists nothing
    api.put("/api/providers/oaic?wait=1", {
        "openai_compatible_key": "key-123456789", "openai_compatible_base_url": "https://example.test/v1",
        "openai_compatible_models": "m-one, m-two", "openai_compatible_embed_models": "e-one"})
    stubs.behaviour["xai"] = []
    api.put("/api/providers/xai?wait=1", {"grok_key": "xai-abcdefghijklmnop"})
    groups = {g["provider"]: g["models"] for g in api.get("/api/models").json()["groups"]}
    assert [m["id"] for m in groups["oaic"]] == ["oaic.m-one", "oaic.m-two", "oaic.e-one"]
    assert groups["oaic"][2]["embedding"] is True
    assert groups["xai"] == [
        {"id": "grok-4", "label": "frontier reasoning", "embedding": False},
        {"id": "grok-3-mini", "label": "fast and cheap", "embedding": False},
    ]


def test_bad_key_is_red_with_the_reason(api: ApiClient, stubs: Stubs) -> None:
    stubs.behaviour["anthropic"] = AuthenticationError(
        "Anthropic Claude rejected the key in anthropic_key: check it at console.anthropic.com/settings/keys "
        f"(invalid x-api-key {ANTHROPIC_KEY})", provider="anthropic", status=401)
    card = api.put("/api/providers/anthropic?wait=true", {"anthropic_key": ANTHROPIC_KEY}).json()
    st = card["status"]
    assert st["state"] == "error" and st["reason"] == "Invalid key"
    assert "rejected the key in anthropic_key" in st["detail"]
    assert ANTHROPIC_KEY not in json.dumps(card)  # redacted even when a provider echoes it
    assert api.get("/api/models").json()["groups"] == []


@pytest.mark.parametrize(
    ("provider", "values", "exc", "reason"),
    [
        ("bedrock", {"bedrock_api_key": BEDROCK_KEY, "aws_region": "eu-west-3"},
         PermissionDeniedError("AWS Bedrock refused access with this key", provider="bedrock", status=403),
         "No access in eu-west-3"),
        ("locv1", {"local_compatible_base_url": "http://127.0.0.1:9/v1"},
         UpstreamUnavailableError("cannot reach Local V1 Compatible at http://127.0.0.1:9/v1", provider="locv1"),
         "Cannot reach the base URL"),
        ("deepseek", {"deepseek_key": "sk-abcdef0123456789"}, ("sleep", 5, []), "No answer in time"),
        ("openai", {"openai_key": OPENAI_KEY}, ImportError("No module named 'synapse.providers.openai'"), "Not supported yet"),
    ],
)
def test_failure_reasons_in_plain_words(api: ApiClient, stubs: Stubs, provider: str, values: dict[str, str],
                                        exc: Any, reason: str) -> None:
    stubs.behaviour[provider] = exc
    t0 = time.monotonic()
    card = api.put(f"/api/providers/{provider}?wait=true", values).json()
    assert time.monotonic() - t0 < 3  # the check timeout (0.5 s here) bounds a hung provider
    assert card["status"]["state"] == "error"
    assert card["status"]["reason"] == reason
    assert card["status"]["detail"]


def test_not_installed_is_grey_not_red(api: ApiClient, stubs: Stubs) -> None:
    stubs.behaviour["hf"] = ProviderNotInstalledError("install transformers: pip install 'synapse-llm[hf]'")
    card = api.post("/api/providers/hf/verify?wait=true").json()
    assert card["status"]["state"] == "not_configured"
    assert "install transformers" in card["status"]["detail"]


def test_check_again_runs_a_fresh_check(api: ApiClient, stubs: Stubs) -> None:
    stubs.behaviour["gemini"] = AuthenticationError("Google Gemini rejected the key in gemini_key", provider="gemini", status=400)
    api.put("/api/providers/gemini?wait=1", {"gemini_key": "AIzaSyA-abcdefghijklmnop"})
    assert cards(api)["gemini"]["status"]["state"] == "error"
    stubs.behaviour["gemini"] = ["gemini-2.5-flash"]
    r = api.post("/api/providers/gemini/verify")
    assert r.status == 200 and r.json()["status"]["state"] == "checking"
    card = api.wait_for("gemini")
    assert card["status"]["state"] == "ok" and card["status"]["models"] == 1
    assert stubs.calls == ["gemini", "gemini"]


def test_verify_unconfigured_provider_says_what_to_do(api: ApiClient) -> None:
    r = api.post("/api/providers/openai/verify")
    assert r.status == 400 and "not set up yet" in r.json()["detail"]


def test_settings_changed_elsewhere_trigger_a_new_check(api: ApiClient, stubs: Stubs) -> None:
    api.put("/api/providers/openai?wait=1", {"openai_key": OPENAI_KEY})
    assert stubs.calls == ["openai"]
    settings_mod.update({"openai_key": "sk-proj-anotherKEY000000001111"})  # e.g. `synapse config set`
    assert api.wait_for("openai")["status"]["state"] == "ok"
    assert stubs.calls == ["openai", "openai"]


def test_remove_clears_the_provider_settings(api: ApiClient, synapse_env: Path) -> None:
    api.put("/api/providers/bedrock?wait=1", {"bedrock_api_key": BEDROCK_KEY, "aws_region": "eu-central-1",
                                               "bedrock_inference_profile": "eu.amazon.nova-pro-v1:0",
                                               "embedding_model": "bedrock.amazon.titan-embed-text-v2:0"})
    api.put("/api/providers/openai?wait=1", {"openai_key": OPENAI_KEY})
    settings_mod.update({"bedrock_control_url": "http://127.0.0.1:1", "my_own_key": "kept"})  # Advanced; not Synapse's
    r = api.delete("/api/providers/bedrock")
    assert r.status == 200 and r.json()["status"]["state"] == "not_configured"
    saved = file_settings(synapse_env)
    for key in ("bedrock_api_key", "aws_region", "bedrock_inference_profile", "embedding_model", "bedrock_control_url"):
        assert key not in saved  # Remove clears every field of the card, Advanced ones too
    assert saved["openai_key"] == OPENAI_KEY and saved["my_own_key"] == "kept"
    assert [g["provider"] for g in api.get("/api/models").json()["groups"]] == ["openai"]


def test_remove_keeps_an_embedding_model_of_another_provider(api: ApiClient, synapse_env: Path) -> None:
    api.put("/api/providers/bedrock", {"bedrock_api_key": BEDROCK_KEY, "aws_region": "us-east-1"})
    settings_mod.update({"embedding_model": "text-embedding-3-small"})
    api.delete("/api/providers/bedrock")
    assert file_settings(synapse_env)["embedding_model"] == "text-embedding-3-small"


def test_ollama_counts_once_saved(api: ApiClient, stubs: Stubs) -> None:
    stubs.behaviour["ollama"] = ["llama3.2:latest", "qwen3:0.6b"]
    card = api.put("/api/providers/ollama?wait=1", {"ollama_base_url": "http://127.0.0.1:11434"}).json()
    assert card["configured"] is True and card["status"]["state"] == "ok"
    ids = [m["id"] for g in api.get("/api/models").json()["groups"] for m in g["models"]]
    assert ids == ["ollama.llama3.2:latest", "ollama.qwen3:0.6b"]


def test_key_from_environment_is_shown_masked_with_its_source(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-envdeepseek0000000000EEEE")
    card = api.wait_for("deepseek")
    assert card["configured"] is True and card["status"]["state"] == "ok"
    assert card["fields"][0]["masked"] == "sk-…EEEE"
    assert card["fields"][0]["source"] == "env:DEEPSEEK_API_KEY"
    assert card["env"] == ["DEEPSEEK_API_KEY"]
    assert "sk-envdeepseek" not in api.get("/api/providers").text


def test_bedrock_inference_profiles(api: ApiClient) -> None:
    r = api.get("/api/providers/bedrock/inference-profiles")
    assert r.json() == {"profiles": [], "detail": "save an API key and region first"}
    api.put("/api/providers/bedrock", {"bedrock_api_key": BEDROCK_KEY, "aws_region": "us-east-1"})
    profiles = api.get("/api/providers/bedrock/inference-profiles").json()
    assert profiles["detail"] == ""
    assert profiles["profiles"][0]["id"] == "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert profiles["profiles"][0]["arn"].startswith("arn:aws:bedrock:us-east-1:")


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "values", "field", "words"),
    [
        ("anthropic", {"anthropic_key": ""}, "anthropic_key", "API Key is required for Anthropic Claude"),
        ("anthropic", {"api_key": "x"}, "api_key", "has no field 'api_key' (its fields: anthropic_key, anthropic_base_url)"),
        ("anthropic", {"anthropic_key": "sk-ant abc"}, "anthropic_key", "must not contain spaces"),
        ("anthropic", {"anthropic_key": 12}, "", ""),  # numbers are text, accepted
        ("anthropic", {"anthropic_key": {"a": 1}}, "anthropic_key", "must be text"),
        ("oaic", {"openai_compatible_key": "k-1234567", "openai_compatible_base_url": "openrouter.ai"},
         "openai_compatible_base_url", "must be an http:// or https:// URL"),
        ("oaic", {"openai_compatible_key": "k-1234567", "openai_compatible_base_url": "https://x.test/v1",
                  "openai_compatible_models": "a b, c"}, "openai_compatible_models", "separated by commas"),
        ("bedrock", {"bedrock_api_key": BEDROCK_KEY, "aws_region": "Frankfurt"}, "aws_region", "AWS region code"),
        ("bedrock", {"bedrock_api_key": BEDROCK_KEY, "aws_region": ""}, "aws_region", "AWS Region is required"),
        ("ollama", {"ollama_base_url": "ftp://host"}, "ollama_base_url", "http:// or https://"),
        ("locv1", {"local_compatible_base_url": "http://h/v1\n"}, "", ""),  # trailing newline stripped
        ("locv1", {"local_compatible_base_url": "http://h/v1\nx"}, "local_compatible_base_url", "one line"),
    ],
)
def test_invalid_card_input_says_what_to_fix(api: ApiClient, synapse_env: Path, provider: str,
                                             values: dict[str, Any], field: str, words: str) -> None:
    r = api.put(f"/api/providers/{provider}", values)
    if not field:
        assert r.status == 200, r
        return
    assert r.status == 400, r
    body = r.json()
    assert body["field"] == field and words in body["detail"]
    assert not (synapse_env / "settings.json").exists()  # nothing written


def test_body_must_be_a_json_object(api: ApiClient) -> None:
    r = api.put("/api/providers/openai", raw=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["detail"] == "the request body is not valid JSON"
    r = api.put("/api/providers/openai", ["sk-x"])
    assert r.status == 400 and "JSON object" in r.json()["detail"]


# --- default model and general settings ----------------------------------------------------------


def test_default_model_get_set_clear(api: ApiClient, synapse_env: Path) -> None:
    assert api.get("/api/settings/model").json() == {"model": ""}
    api.put("/api/providers/oaic", {"openai_compatible_key": "k-123", "openai_compatible_base_url": "http://127.0.0.1:9/v1"})
    r = api.put("/api/settings/model", {"model": " oaic.some/model-1 "})
    assert r.status == 200 and r.json() == {"model": "oaic.some/model-1"}
    assert file_settings(synapse_env)["model"] == "oaic.some/model-1"
    assert api.get("/api/models").json()["model"] == "oaic.some/model-1"
    r = api.put("/api/settings/model", {"model": ""})
    assert r.json() == {"model": ""} and "model" not in file_settings(synapse_env)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "two words"}, "has no spaces"),
        ({"model": 5}, "must be a string"),
        ({}, 'send {"model": "<model name>"}'),
        ({"model": "oaic."}, "names no model"),
    ],
)
def test_default_model_invalid(api: ApiClient, body: dict[str, Any], words: str) -> None:
    r = api.put("/api/settings/model", body)
    assert r.status == 400 and words in r.json()["detail"] and r.json()["field"] == "model"


def test_default_model_of_an_unconnected_provider_is_refused(api: ApiClient, synapse_env: Path) -> None:
    for model, card in [("gpt-5", "OpenAI"), ("claude-sonnet-4-5", "Anthropic Claude"), ("mistral", "Ollama (Local)"),
                        ("oaic.some/model", "OpenAI Compatible"), ("bedrock.amazon.nova-pro-v1:0", "AWS Bedrock")]:
        r = api.put("/api/settings/model", {"model": model})
        assert r.status == 400 and r.json() == {
            "detail": f"{model} needs {card}, which is not connected: fill in the {card} card on Settings → Models and Save first",
            "field": "model"}, model
    assert not (synapse_env / "settings.json").exists()
    assert api.put("/api/settings/model", {"model": "hf.Qwen/Qwen2.5-0.5B-Instruct"}).status == 200  # no card to fill
    api.put("/api/providers/openai", {"openai_key": OPENAI_KEY})
    assert api.put("/api/settings/model", {"model": "gpt-5"}).status == 200


def test_removing_the_default_models_provider_warns(api: ApiClient, synapse_env: Path) -> None:
    api.put("/api/providers/anthropic?wait=1", {"anthropic_key": ANTHROPIC_KEY})
    assert api.put("/api/settings/model", {"model": "claude-sonnet-4-5"}).status == 200
    assert api.get("/api/models").json()["model_warning"] == ""
    api.delete("/api/providers/anthropic")
    models = api.get("/api/models").json()
    assert models["model"] == "claude-sonnet-4-5"  # kept: pasting the key again brings it back
    assert models["model_warning"] == ("claude-sonnet-4-5 needs Anthropic Claude, which is not connected: "
                                       "fill in the Anthropic Claude card on Settings → Models and Save first")
    path = synapse_env / "settings.json"  # a hand edit the router cannot use
    path.write_text(json.dumps({**json.loads(path.read_text()), "model": "oaic."}))
    settings_mod._cache.clear()
    assert api.get("/api/models").json()["model_warning"] == "'oaic.' names no model: write oaic.<model name>"


def test_general_settings(api: ApiClient, synapse_env: Path) -> None:
    g = api.get("/api/settings").json()
    assert g == {"prompt_cache_enabled": True, "embedding_model": "", "mode": "local", "model": ""}
    r = api.put("/api/settings", {"prompt_cache_enabled": False, "embedding_model": "text-embedding-3-small", "mode": "bedrock"})
    assert r.status == 200
    assert r.json()["prompt_cache_enabled"] is False
    saved = file_settings(synapse_env)
    assert saved["prompt_cache_enabled"] is False and saved["embedding_model"] == "text-embedding-3-small"
    assert saved["mode"] == "bedrock"
    for body, words in [
        ({"prompt_cache_enabled": "yes"}, "true or false"),
        ({"mode": "turbo"}, "mode must be one of: local, cloud, bedrock"),
        ({"prompt_cache_enabled": "false"}, "true or false"),  # JSON booleans only
        ({"anthropic_key": "sk-ant-x"}, "cannot be changed here"),
        ({"model": "x"}, "PUT /api/settings/model"),
        ({"embedding_model": "a b"}, "without spaces"),
    ]:
        r = api.put("/api/settings", body)
        assert r.status == 400 and words in r.json()["detail"], (body, r)


def test_settings_file_keeps_unknown_keys(api: ApiClient, synapse_env: Path) -> None:
    synapse_env.mkdir(parents=True, exist_ok=True)
    (synapse_env / "settings.json").write_text('{"my_own_note": "keep me"}')
    api.put("/api/providers/openai", {"openai_key": OPENAI_KEY})
    assert file_settings(synapse_env) == {"my_own_note": "keep me", "openai_key": OPENAI_KEY}


def test_malformed_settings_file_is_reported_and_never_overwritten(api: ApiClient, synapse_env: Path) -> None:
    synapse_env.mkdir(parents=True, exist_ok=True)
    path = synapse_env / "settings.json"
    path.write_text('{"openai_key": "sk-x",\n  oops}')
    before = path.read_bytes()
    r = api.get("/api/providers")
    assert r.status == 500 and r.json()["kind"] == "settings"
    assert "line 2, column 3" in r.json()["detail"] and "will not overwrite" in r.json()["detail"]
    r = api.put("/api/providers/openai", {"openai_key": OPENAI_KEY})
    assert r.status == 500 and r.json()["kind"] == "settings"
    assert api.put("/api/settings/model", {"model": "gpt-5"}).status == 500
    assert path.read_bytes() == before
    assert api.get("/settings/models").status == 200  # the page still loads and shows the error


# --- security ------------------------------------------------------------------------------------


def test_csrf_required_on_every_state_change(api: ApiClient, synapse_env: Path) -> None:
    for method, path in [("PUT", "/api/providers/openai"), ("POST", "/api/providers/openai"),
                         ("DELETE", "/api/providers/openai"), ("POST", "/api/providers/openai/verify"),
                         ("PUT", "/api/settings/model"), ("PUT", "/api/settings"), ("POST", "/api/logout")]:
        r = api.request(method, path, {"openai_key": OPENAI_KEY}, csrf=False)
        assert r.status == 403 and r.json()["kind"] == "csrf", (method, path, r)
        r = api.request(method, path, {"openai_key": OPENAI_KEY}, headers={"X-CSRF-Token": "forged"})
        assert r.status == 403, (method, path, r)
    assert not (synapse_env / "settings.json").exists()


def test_cross_site_origin_refused_even_with_token(api: ApiClient) -> None:
    api.refresh_csrf()
    assert api.put("/api/providers/openai", {"openai_key": OPENAI_KEY}).status == 200
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "http://127.0.0.1:1"}):
        r = api.put("/api/settings/model", {"model": "gpt-5"}, headers=headers)
        assert r.status == 403 and "cross-site" in r.json()["detail"], headers
    assert api.put("/api/settings/model", {"model": "gpt-5"}).status == 200


def test_token_of_another_session_is_refused(server: ServerThread) -> None:
    a, b = ApiClient(server.url), ApiClient(server.url)
    a.refresh_csrf()
    b.refresh_csrf()
    b.csrf = a.csrf
    assert b.put("/api/settings/model", {"model": "gpt-5"}).status == 403


def test_dns_rebinding_host_refused(api: ApiClient) -> None:
    r = api.get("/api/providers", headers={"Host": "attacker.example:8000"})
    assert r.status == 400 and "loopback" in r.json()["detail"]
    assert api.get("/api/providers", headers={"Host": f"localhost:{api.port}"}).status == 200


def test_cookie_and_security_headers(server: ServerThread) -> None:
    c = ApiClient(server.url)
    r = c.get("/settings/models")
    cookie = r.headers["Set-Cookie"]
    assert "synapse_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert f'<meta name="csrf-token" content="{c.refresh_csrf()}">' in r.text
    assert c.get("/api/providers").headers["Cache-Control"] == "no-store"
    assert c.get("/").status == 303


@pytest.fixture(scope="module")
def login_server(stubs: Stubs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, UserStore]]:
    users = UserStore(tmp_path_factory.mktemp("users") / "users.json")
    users.set("admin", "correct horse battery")
    app = create_app("0.0.0.0", adapter_factory=stubs.factory, users=users)
    srv = ServerThread(app).start()
    yield srv, users
    srv.stop()


def test_login_required_off_loopback(login_server: tuple[ServerThread, UserStore], synapse_env: Path) -> None:
    srv, _ = login_server
    c = ApiClient(srv.url)
    assert c.get("/api/session").json()["login_required"] is True
    r = c.get("/api/providers")
    assert r.status == 401 and r.json()["kind"] == "login"
    r = c.get("/settings/models")
    assert r.status == 303 and r.headers["Location"] == "/login"
    assert c.get("/login").status == 200
    assert c.put("/api/providers/openai", {"openai_key": OPENAI_KEY}).status == 401
    # login itself needs the CSRF token (no login CSRF)
    r = c.post("/api/login", {"username": "admin", "password": "correct horse battery"}, csrf=False)
    assert r.status == 403
    r = c.post("/api/login", {"username": "admin", "password": "wrong password"})
    assert r.status == 401 and r.json()["detail"] == "wrong username or password"
    old_cookie = c.cookies["synapse_session"]
    r = c.post("/api/login", {"username": "admin", "password": "correct horse battery"})
    assert r.status == 200 and r.json()["user"] == "admin"
    assert c.cookies["synapse_session"] != old_cookie  # session id rotated on login
    c.csrf = r.json()["csrf_token"]
    assert c.get("/api/providers").status == 200
    assert c.put("/api/providers/openai", {"openai_key": OPENAI_KEY}).status == 200
    assert c.put("/api/providers/openai", {"openai_key": OPENAI_KEY}, csrf=False).status == 403
    assert 'name="user" content="admin"' in c.get("/settings/models").text
    r = c.post("/api/logout")
    assert r.status == 200
    assert c.get("/api/providers").status == 401


def test_failed_logins_are_throttled(login_server: tuple[ServerThread, UserStore]) -> None:
    srv, _ = login_server
    c = ApiClient(srv.url)
    codes = [c.post("/api/login", {"username": "throttled", "password": "nope-nope"}).status for _ in range(6)]
    assert codes == [401] * 5 + [429]


def test_users_file_is_hashed_and_private(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    with pytest.raises(ValueError, match="at least 8 characters"):
        store.set("bob", "short")
    with pytest.raises(ValueError, match="username"):
        store.set("bad name", "long enough pw")
    store.set("bob", "long enough pw")
    text = (tmp_path / "users.json").read_text()
    assert "long enough pw" not in text and "scrypt$" in text
    assert stat.S_IMODE(os.stat(tmp_path / "users.json").st_mode) == 0o600
    assert store.check("bob", "long enough pw") and not store.check("bob", "long enough pX")
    assert not store.check("alice", "long enough pw")
    store.set("bob", "another password")
    assert store.check("bob", "another password") and store.names() == ["bob"]


def test_usage_api_is_mounted_when_present(api: ApiClient) -> None:
    pytest.importorskip("synapse.usage.api")
    r = api.get("/api/usage/summary")
    assert r.status == 200, r  # mounted; its numbers are tested by the usage suite
    assert isinstance(r.json(), dict)
