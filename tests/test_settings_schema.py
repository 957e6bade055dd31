"""The settings schema: one check per key, used by `config set`, the web API and update()."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synapse import settings
from synapse.errors import SettingsError
from synapse.settings_schema import SCHEMA, UnknownSettingError, describe, validate


def test_defaults_and_env_fallbacks_come_from_the_schema() -> None:
    assert list(settings.DEFAULTS) == [s.key for s in SCHEMA]
    assert settings.DEFAULTS["request_timeout"] == 120 and settings.DEFAULTS["request_deadline"] == 300
    assert settings.DEFAULTS["mode"] == "local" and list(settings.DEFAULTS)[0] == "mode"
    assert settings.ENV_FALLBACKS["gemini_key"] == ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    assert "model" not in settings.ENV_FALLBACKS


def test_every_default_passes_its_own_check() -> None:
    for s in SCHEMA:
        assert validate(s.key, s.default) == s.default, s.key
        assert s.meaning and s.check.expects, s.key


@pytest.mark.parametrize(
    ("key", "typed", "stored"),
    [
        ("request_timeout", "0.5", 0.5),
        ("request_timeout", "30", 30),
        ("request_deadline", "600", 600),
        ("request_deadline", "0", 0),
        ("max_retries", "0", 0),
        ("max_retries", "3.0", 3),
        ("response_cache_similarity", "1", 1),
        ("response_cache_similarity", "0.9", 0.9),
        ("response_cache_ttl", "0", 0),
        ("prompt_cache_enabled", "off", False),
        ("prompt_cache_enabled", "TRUE", True),
        ("mode", "Bedrock", "bedrock"),
        ("aws_region", "us-gov-west-1", "us-gov-west-1"),
        ("openai_base_url", "https://proxy.example/v1/", "https://proxy.example/v1"),
        ("openai_compatible_models", "a,b ,, c", "a, b, c"),
        ("openai_compatible_models", ["a", " b"], "a, b"),
        ("database_url", "postgresql+psycopg://u:p@db/synapse", "postgresql+psycopg://u:p@db/synapse"),
        ("model", "  claude-sonnet-4-5 ", "claude-sonnet-4-5"),
        ("model", "", ""),
    ],
)
def test_typed_values_become_their_stored_form(key: str, typed: Any, stored: Any) -> None:
    value = validate(key, typed)
    assert value == stored and type(value) is type(stored)


@pytest.mark.parametrize(
    ("key", "typed", "words"),
    [
        ("request_timeout", "0", "request_timeout must be a number in (0, 86400]"),
        ("request_timeout", "-1", "in (0, 86400]"),
        ("request_timeout", "soon", "a number in (0, 86400]"),
        ("request_timeout", "nan", "a number in (0, 86400]"),
        ("request_timeout", "1e308", "a number in (0, 86400]"),
        ("max_retries", "1e20", "in [0, 100]"),
        ("request_deadline", "-1", "request_deadline must be a number in [0, 86400]"),
        ("max_retries", "2.5", "max_retries must be a whole number in [0, 100]"),
        ("max_retries", "-1", "whole number in [0, 100]"),
        ("response_cache_similarity", "0", "in (0, 1]"),
        ("response_cache_similarity", "1.01", "in (0, 1]"),
        ("response_cache_ttl", "-5", "response_cache_ttl must be a number in [0, 315360000]"),
        ("prompt_cache_enabled", "perhaps", "must be true or false"),
        ("mode", "cloudy", "mode must be one of: local, cloud, bedrock"),
        ("aws_region", "Frankfurt", "AWS region code such as us-east-1"),
        ("ollama_base_url", "ftp://host", "http:// or https:// URL"),
        ("openai_compatible_base_url", "openrouter.ai/api/v1", "http:// or https:// URL, like https://openrouter.ai"),
        ("openai_compatible_models", "a b, c", "separated by commas and contain no spaces"),
        ("model", "two words", "without spaces"),
        ("model", "oaic.", "names no model"),
        ("database_url", "synapse.db", "database URL"),
        ("bedrock_inference_profile", "us.x y", "no spaces"),
        ("model", "line\nbreak", "one line"),
    ],
)
def test_bad_values_say_what_to_fix(key: str, typed: Any, words: str) -> None:
    with pytest.raises(SettingsError) as info:
        validate(key, typed)
    assert words in str(info.value)


def test_secret_errors_never_quote_the_key() -> None:
    key = "sk-ant-api03-SECRET PART-abcd"
    with pytest.raises(SettingsError) as info:
        validate("anthropic_key", key)
    assert "SECRET" not in str(info.value) and "must not contain spaces" in str(info.value)


def test_json_input_must_have_the_json_type() -> None:
    """The web API sends JSON: "true" and "120" are strings there, not a boolean and a number."""
    with pytest.raises(SettingsError, match="true or false"):
        validate("prompt_cache_enabled", "true", strict=True)
    with pytest.raises(SettingsError, match=r"a number in \(0, 86400\]"):
        validate("request_timeout", "120", strict=True)
    assert validate("request_timeout", 120, strict=True) == 120
    assert validate("prompt_cache_enabled", False, strict=True) is False


def test_unknown_key_lists_the_known_ones_and_guesses() -> None:
    with pytest.raises(UnknownSettingError) as info:
        validate("antropic_key", "x")
    message = str(info.value)
    assert "did you mean 'anthropic_key'?" in message
    assert all(s.key in message for s in SCHEMA)
    assert validate("my_plugin", {"a": 1}, custom_ok=True) == {"a": 1}


def test_update_validates_before_writing(synapse_env: Path) -> None:
    settings.update({"request_timeout": "30", "prompt_cache_enabled": "no", "max_retries": "4"})
    with pytest.raises(SettingsError):
        settings.update({"model": "gpt-5", "max_retries": "many"})
    on_disk = json.loads((synapse_env / "settings.json").read_text())
    assert on_disk == {"request_timeout": 30, "prompt_cache_enabled": False, "max_retries": 4}


def test_hand_edited_bad_boolean_falls_back_to_the_default(synapse_env: Path) -> None:
    synapse_env.mkdir(parents=True)
    (synapse_env / "settings.json").write_text('{"prompt_cache_enabled": "maybe"}')
    assert settings.load().get_bool("prompt_cache_enabled") is True


def test_describe_has_every_key_with_meaning_and_default() -> None:
    rows = {r["key"]: r for r in describe()}
    assert set(rows) == set(settings.DEFAULTS)
    assert rows["max_retries"]["default"] == 2 and rows["max_retries"]["expects"] == "a whole number in [0, 100]"
    assert rows["anthropic_key"]["env"] == ["ANTHROPIC_API_KEY"]


def test_checks_other_parts_will_use() -> None:
    """Ready for keys other helpers add (trusted_proxies, free text)."""
    from synapse.settings_schema import Networks, Text

    assert Networks()("trusted_proxies", ["127.0.0.1", " 10.0.0.0/8"]) == "127.0.0.1, 10.0.0.0/8"
    assert Networks()("trusted_proxies", "::1, fd00::/8") == "::1, fd00::/8"
    with pytest.raises(SettingsError, match="'proxy.local' is not an IP address"):
        Networks()("trusted_proxies", "10.0.0.1, proxy.local")
    assert Text()("note", 5) == "5"
    with pytest.raises(SettingsError, match="must be text"):
        Text()("note", {"a": 1})


def test_a_bad_hand_edited_value_never_reaches_a_call(synapse_env: Path) -> None:
    from synapse.providers.catalog import get

    path = synapse_env / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"anthropic_key": "sk-ant-api03-x", "request_timeout": -1, "max_retries": "lots", '
                    '"request_deadline": 0}')
    settings._cache.clear()
    config = get("anthropic").configure(settings.load())
    assert (config.timeout, config.max_retries, config.deadline) == (120.0, 2, 0.0)  # 0 is valid: no deadline
