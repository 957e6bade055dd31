"""`synapse info` and `synapse config`: masked secrets, clear errors, no tracebacks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

SECRET = "sk-ant-api03-THISISASECRET-0000-abcd"


def test_help_lists_the_commands(cli: Any) -> None:
    with pytest.raises(SystemExit) as info:
        cli("--help")
    assert info.value.code == 0


def test_version(cli: Any) -> None:
    import synapse

    result = cli("--version")
    assert result.code == 0 and result.out.strip() == synapse.__version__


def test_config_set_get_list_masks_secrets(cli: Any, synapse_env: Path) -> None:
    result = cli("config", "set", "anthropic_key", SECRET)
    assert result.code == 0 and SECRET not in result.out and "sk-ant-…abcd" in result.out
    assert json.loads((synapse_env / "settings.json").read_text())["anthropic_key"] == SECRET
    got = cli("config", "get", "anthropic_key")
    assert got.out.strip() == "sk-ant-…abcd"
    listed = cli("config", "list")
    assert SECRET not in listed.out and 'anthropic_key = "sk-ant-…abcd"' in listed.out
    as_json = json.loads(cli("config", "list", "--json").out)
    assert as_json["anthropic_key"] == "sk-ant-…abcd"
    assert as_json["ollama_base_url"] == "http://127.0.0.1:11434"


def test_config_set_bool_and_unset(cli: Any, synapse_env: Path) -> None:
    assert cli("config", "set", "prompt_cache_enabled", "false").code == 0
    assert cli("config", "get", "prompt_cache_enabled").out.strip() == "false"
    assert cli("config", "unset", "prompt_cache_enabled").code == 0
    assert cli("config", "get", "prompt_cache_enabled").out.strip() == "true"


def test_config_set_unknown_key_is_refused_unless_forced(cli: Any, synapse_env: Path) -> None:
    result = cli("config", "set", "antropic_key", "x")
    assert result.code == 2 and "unknown setting 'antropic_key'" in result.err
    assert not (synapse_env / "settings.json").exists()
    assert cli("config", "set", "antropic_key", "x", "--force").code == 0


def test_config_bad_bool_is_a_clear_error(cli: Any) -> None:
    result = cli("config", "set", "prompt_cache_enabled", "perhaps")
    assert result.code == 2 and "must be true or false" in result.err


def test_info_shows_paths_and_masked_keys(cli: Any, synapse_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("config", "set", "anthropic_key", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-ENVSECRET-1234567-wxyz")
    result = cli("info", "--no-check")
    assert result.code == 0
    assert str(synapse_env) in result.out and str(synapse_env / "settings.json") in result.out
    assert SECRET not in result.out and "ENVSECRET" not in result.out
    assert "sk-ant-…abcd (file)" in result.out and "sk-proj-…wxyz (env:OPENAI_API_KEY)" in result.out
    data = json.loads(cli("info", "--json", "--no-check").out)
    anthropic = next(p for p in data["providers"] if p["id"] == "anthropic")
    assert anthropic == {
        "id": "anthropic", "label": "Anthropic Claude", "configured": True, "key": "sk-ant-…abcd",
        "key_source": "file", "base_url": "https://api.anthropic.com",
    }
    assert next(p for p in data["providers"] if p["id"] == "gemini")["configured"] is False


def test_bedrock_sigv4_credentials_count_as_configured(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    data = json.loads(cli("info", "--json", "--no-check").out)
    bedrock = next(p for p in data["providers"] if p["id"] == "bedrock")
    assert bedrock["configured"] is True and bedrock["sigv4"] == "AWS_ACCESS_KEY_ID …MPLE"
    assert "wJalrXUtnFEMI" not in json.dumps(data)


def test_malformed_settings_is_one_line_not_a_traceback(run_synapse: Any, synapse_env: Path) -> None:
    synapse_env.mkdir(parents=True)
    path = synapse_env / "settings.json"
    path.write_text('{"model": "x",}')
    path.chmod(0o600)  # a readable file adds a warning line (tested on its own)
    for args in (["info"], ["config", "set", "model", "y"], ["chat", "-m", "claude-x", "hi"]):
        result = run_synapse(*args)
        assert result.code == 2, args
        assert "Traceback" not in result.err and result.err.count("\n") == 1
        assert str(path) in result.err and "line 1, column 15" in result.err
    assert path.read_text() == '{"model": "x",}'


def test_chat_without_key_is_one_clear_line(run_synapse: Any) -> None:
    result = run_synapse("chat", "-m", "claude-sonnet-4-5", "hello")
    assert result.code == 2
    assert result.err.strip() == (
        "synapse: Anthropic Claude is not configured: set anthropic_key in Settings → Models, "
        "with `synapse config set anthropic_key VALUE` or the ANTHROPIC_API_KEY environment variable"
    )


def test_chat_without_prompt_says_how(cli: Any) -> None:
    result = cli("chat", "-m", "claude-x", stdin="")
    assert result.code == 2 and "no prompt" in result.err


def test_settings_file_written_by_cli_is_private(cli: Any, synapse_env: Path) -> None:
    cli("config", "set", "model", "mistral")
    assert oct(os.stat(synapse_env / "settings.json").st_mode & 0o777) == "0o600"


def test_passwords_in_urls_are_never_shown(cli: Any) -> None:
    result = cli("config", "set", "redis_url", "redis://:hunter2-redis-pass@cache.internal:6379/0")
    assert result.code == 0 and "hunter2" not in result.out + result.err
    assert cli("config", "get", "redis_url").out.strip() == "redis://:****@cache.internal:6379/0"
    assert "hunter2" not in cli("config", "list").out
    assert "hunter2" not in cli("config", "list", "--json").out
    # A PostgreSQL database_url is scale mode: saved (and masked), and the next command says what it needs.
    url = "postgresql://synapse:hunter2-db-pass@db.internal:5432/synapse"
    result = cli("config", "set", "database_url", url)
    assert result.code == 0 and "hunter2" not in result.out + result.err
    after = cli("config", "get", "database_url")
    assert after.code == 2 and "SYNAPSE_SECRET_KEY" in after.err and "synapse secrets new" in after.err
    assert "hunter2" not in after.out + after.err


def test_info_says_hugging_face_needs_transformers(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    assert "Hugging Face (Local)   not installed (pip install 'synapse-llm[hf]')" in cli("info", "--no-check").out
    hf = next(p for p in json.loads(cli("info", "--json", "--no-check").out)["providers"] if p["id"] == "hf")
    assert hf["configured"] is False
