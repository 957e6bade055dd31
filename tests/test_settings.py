"""settings.json: merge over defaults, env fallbacks, atomic 0600 saves, concurrency, malformed files."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import threading
from pathlib import Path

import pytest

from synapse import settings
from synapse.errors import SettingsError


def test_data_dir_comes_from_env(synapse_env: Path) -> None:
    assert settings.data_dir() == synapse_env
    assert settings.settings_path() == synapse_env / "settings.json"


def test_data_dir_defaults_to_per_user_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SYNAPSE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert settings.data_dir() == tmp_path / "xdg" / "synapse"


def test_missing_file_gives_defaults(synapse_env: Path) -> None:
    s = settings.load()
    assert s["ollama_base_url"] == "http://127.0.0.1:11434"
    assert s["prompt_cache_enabled"] is True
    assert s["anthropic_key"] == ""
    assert not s.path.exists()


def test_file_merges_over_defaults_and_keeps_unknown_keys(synapse_env: Path) -> None:
    synapse_env.mkdir(parents=True)
    (synapse_env / "settings.json").write_text(
        json.dumps({"model": "mistral", "my_plugin_option": {"a": 1}, "prompt_cache_enabled": False})
    )
    s = settings.load()
    assert s["model"] == "mistral"
    assert s["prompt_cache_enabled"] is False
    assert s["my_plugin_option"] == {"a": 1}
    settings.update({"openai_key": "sk-test-123456789"})
    on_disk = json.loads((synapse_env / "settings.json").read_text())
    assert on_disk == {
        "model": "mistral",
        "my_plugin_option": {"a": 1},
        "prompt_cache_enabled": False,
        "openai_key": "sk-test-123456789",
    }


def test_save_is_mode_0600_and_leaves_no_temp_files(synapse_env: Path) -> None:
    settings.update({"anthropic_key": "sk-ant-secret-abcdef1234"})
    path = synapse_env / "settings.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in synapse_env.iterdir()) == ["settings.json", "settings.json.lock"]


def test_update_none_removes_a_key(synapse_env: Path) -> None:
    settings.update({"grok_key": "xai-abcdefghijklmnop", "model": "grok-4"})
    settings.update({"grok_key": None})
    assert json.loads((synapse_env / "settings.json").read_text()) == {"model": "grok-4"}


def test_bool_settings_are_coerced_and_validated(synapse_env: Path) -> None:
    assert settings.update({"prompt_cache_enabled": "off"})["prompt_cache_enabled"] is False
    assert settings.update({"prompt_cache_enabled": "true"})["prompt_cache_enabled"] is True
    with pytest.raises(SettingsError, match="prompt_cache_enabled must be true or false"):
        settings.update({"prompt_cache_enabled": "maybe"})


def test_malformed_file_names_file_line_and_column_and_is_never_overwritten(synapse_env: Path) -> None:
    synapse_env.mkdir(parents=True)
    path = synapse_env / "settings.json"
    broken = '{\n  "model": "mistral",\n  "openai_key": sk-oops\n}\n'
    path.write_text(broken)
    with pytest.raises(SettingsError) as info:
        settings.load()
    message = str(info.value)
    assert str(path) in message and "line 3, column 17" in message
    with pytest.raises(SettingsError):
        settings.update({"model": "llama3"})
    assert path.read_text() == broken


def test_non_object_file_is_rejected(synapse_env: Path) -> None:
    synapse_env.mkdir(parents=True)
    (synapse_env / "settings.json").write_text("[1, 2]")
    with pytest.raises(SettingsError, match="must hold a JSON object"):
        settings.load()


def test_env_fills_only_what_the_file_leaves_empty(synapse_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-0000")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-google-env-key")
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://10.0.0.5:11434")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    settings.update({"openai_key": "sk-file-key-123456", "anthropic_key": ""})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-should-lose")
    s = settings.load()
    assert s["anthropic_key"] == "sk-ant-from-env-0000"
    assert s.source("anthropic_key") == "env:ANTHROPIC_API_KEY"
    assert s["openai_key"] == "sk-file-key-123456"
    assert s.source("openai_key") == "file"
    assert s["gemini_key"] == "AIza-google-env-key"
    assert s["ollama_base_url"] == "http://10.0.0.5:11434"
    assert s["aws_region"] == "eu-west-1"
    assert s.source("deepseek_key") == "default"


def test_gemini_api_key_wins_over_google_api_key(synapse_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-google")
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-gemini")
    assert settings.load()["gemini_key"] == "AIza-gemini"


def test_load_rereads_only_when_the_file_changes(synapse_env: Path) -> None:
    settings.update({"model": "a"})
    first = settings.load()
    assert settings.load() is first
    path = synapse_env / "settings.json"
    path.write_text(json.dumps({"model": "hand-edited"}))
    os.utime(path, ns=(first.path.stat().st_mtime_ns + 10_000_000,) * 2)
    assert settings.load()["model"] == "hand-edited"


def test_concurrent_saves_from_threads_lose_nothing(synapse_env: Path) -> None:
    def save(i: int) -> None:
        settings.update({f"custom_{i}": str(i)})

    threads = [threading.Thread(target=save, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = json.loads((synapse_env / "settings.json").read_text())
    assert {k: v for k, v in data.items() if k.startswith("custom_")} == {f"custom_{i}": str(i) for i in range(40)}


def _save_in_process(data_dir: str, i: int) -> None:
    os.environ["SYNAPSE_DATA_DIR"] = data_dir
    for j in range(10):
        settings.update({f"p{i}_{j}": j})


def test_concurrent_saves_from_processes_lose_nothing(synapse_env: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_save_in_process, args=(str(synapse_env), i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    data = json.loads((synapse_env / "settings.json").read_text())
    assert {k for k in data if k.startswith("p")} == {f"p{i}_{j}" for i in range(4) for j in range(10)}


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("sk-ant-api03-AAAAAAAAAAAAAAAAAAAAa1b2", "sk-ant-…a1b2"),
        ("sk-proj-ZZZZZZZZZZZZZZZZ9f9f", "sk-proj-…9f9f"),
        ("AIzaSyD-0123456789abcdefXYZW", "AIza…XYZW"),
        ("xai-abcdefghijklmnop1234", "xai-…1234"),
        ("absk-QmVkcm9ja0FQSUtleQ==k9k9", "absk-…k9k9"),
        ("plainsecretvalue7777", "…7777"),
        ("short", "…****"),
        ("", ""),
    ],
)
def test_mask_shows_kind_and_last_four_only(raw: str, masked: str) -> None:
    assert settings.mask(raw) == masked


def test_masked_view_hides_every_secret(synapse_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-ant-api03-SECRETSECRETSECRET-zz99"
    settings.update({"anthropic_key": secret, "openai_compatible_key": "or-key-123456789012", "model": "claude-x"})
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-deepseek-env-secret-4444")
    dumped = json.dumps(settings.load().masked(), ensure_ascii=False)
    assert secret not in dumped and "or-key-123456789012" not in dumped and "deepseek-env-secret" not in dumped
    assert "sk-ant-…zz99" in dumped and "…9012" in dumped and "…4444" in dumped
    assert '"model": "claude-x"' in dumped


def test_reprs_never_show_keys(synapse_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synapse.providers.catalog import get

    secret = "sk-ant-api03-REPRSECRET-000000"
    s = settings.update({"anthropic_key": secret})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREPRSECRET00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-repr-secret-value")
    assert "REPRSECRET" not in repr(s)
    assert "REPRSECRET" not in repr(get("anthropic").configure(s))
    bedrock = repr(get("bedrock").configure(s))
    assert "REPRSECRET" not in bedrock and "aws-repr-secret" not in bedrock


def test_load_with_max_age_skips_the_stat_but_sees_saves_at_once(synapse_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.update({"model": "a"})
    first = settings.load(max_age=60)
    assert first["model"] == "a" and settings.load(max_age=60) is first
    settings.update({"model": "b"})  # a save by this process: seen at once
    assert settings.load(max_age=60)["model"] == "b"
    path = synapse_env / "settings.json"
    path.write_text(json.dumps({"model": "hand-edited"}))
    os.utime(path, ns=(path.stat().st_mtime_ns + 10_000_000,) * 2)
    assert settings.load(max_age=60)["model"] == "b"  # a hand edit: within max_age, not yet
    assert settings.load()["model"] == "hand-edited"  # a plain load() stats and sees it
    assert settings.load(max_age=60)["model"] == "hand-edited"
    other = synapse_env.parent / "other-data"
    monkeypatch.setenv("SYNAPSE_DATA_DIR", str(other))
    assert settings.load(max_age=60).path == other / "settings.json"  # another data folder is another entry


def test_a_snapshot_reads_the_environment_as_it_is_at_each_lookup(synapse_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`get` skips Mapping.get's raise-and-catch, and `_env.getenv` reads os.environ's own
    mapping: a variable set or removed after the snapshot was loaded is seen at once."""
    from synapse._env import getenv

    s = settings.load()
    assert s.get("openai_key") == "" and getenv("OPENAI_API_KEY") is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-later-0000")
    assert s.get("openai_key") == s["openai_key"] == "sk-env-later-0000" == getenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY")
    assert s.get("openai_key") == "" and getenv("OPENAI_API_KEY") is None
    os.environ["SYNAPSE_TEST_ÜNICODE"] = "wert-ü"
    try:
        assert getenv("SYNAPSE_TEST_ÜNICODE") == os.environ.get("SYNAPSE_TEST_ÜNICODE") == "wert-ü"
    finally:
        del os.environ["SYNAPSE_TEST_ÜNICODE"]


def test_get_and_indexing_agree_on_unknown_and_falsy_values(synapse_env: Path) -> None:
    settings.update({"my_zero": 0, "my_false": False, "my_empty": ""})
    s = settings.load()
    assert (s.get("my_zero"), s.get("my_false")) == (0, False)  # kept: only None and "" are empty
    assert s.get("my_empty") is None and s.get("my_empty", "d") == "d"
    assert s.get("no_such_key") is None and s.get("no_such_key", 7) == 7
    with pytest.raises(KeyError):
        s["no_such_key"]
    assert s["prompt_cache_enabled"] is True and s.get("prompt_cache_enabled", False) is True
