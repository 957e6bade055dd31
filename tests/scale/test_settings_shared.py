"""Settings in scale mode: the shared `settings` table, seeded from settings.json, secrets
encrypted under SYNAPSE_SECRET_KEY, rotatable, and a save live in every process within 1 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from synapse import settings as settings_mod
from synapse import storage
from synapse.scale import secrets, settings_store
from tests.conftest import TEST_SECRET_KEY


@pytest.fixture
def pg(synapse_env: Path, pg_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Scale mode on a fresh database, with settings.json written before the first read."""
    url = pg_server.create_database(f"s{os.getpid()}_{time.monotonic_ns()}", template="synapse_template")
    monkeypatch.setenv("SYNAPSE_DATABASE_URL", url)
    monkeypatch.setenv("SYNAPSE_SECRET_KEY", TEST_SECRET_KEY)
    yield url
    settings_store.reset()
    eng = storage._engines.pop(storage.normalize_url(url), None)
    if eng is not None:
        eng.dispose()


def _rows(url: str) -> dict[str, tuple[str, bool]]:
    from synapse.storage.tables import settings as table

    with storage.engine(url).connect() as conn:
        return {k: (v, e) for k, v, e in conn.execute(sa.select(table.c.key, table.c.value, table.c.encrypted))}


def _write_file(data: Path, values: dict[str, Any]) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "settings.json").write_text(json.dumps(values))


def test_settings_json_seeds_the_table_and_keys_are_encrypted_at_rest(synapse_env: Path, pg: str) -> None:
    _write_file(synapse_env, {"anthropic_key": "sk-ant-api03-seeded-key-1234", "request_timeout": 30,
                              "redis_url": "redis://127.0.0.1:1/0"})
    s = settings_mod.load()
    assert s["anthropic_key"] == "sk-ant-api03-seeded-key-1234" and s["request_timeout"] == 30
    rows = _rows(pg)
    value, encrypted = rows["anthropic_key"]
    assert encrypted and "seeded-key" not in value  # a Fernet token, not the key
    assert rows["request_timeout"] == ("30", False)
    assert "redis_url" not in rows  # where the shared state is stays in the file / environment
    # The table is the truth now: a change to the file does not override it.
    _write_file(synapse_env, {"anthropic_key": "sk-ant-api03-file-edit-9999"})
    settings_mod._scale_cache.clear()
    settings_store.store_for(settings_store.scale_url({})).invalidate()
    assert settings_mod.load()["anthropic_key"] == "sk-ant-api03-seeded-key-1234"


def test_saves_go_to_the_table_not_the_file(synapse_env: Path, pg: str) -> None:
    s = settings_mod.update({"openai_key": "sk-proj-saved-in-db-5678", "max_retries": 5})
    assert s["openai_key"] == "sk-proj-saved-in-db-5678" and s["max_retries"] == 5
    assert not (synapse_env / "settings.json").exists() or "saved-in-db" not in (synapse_env / "settings.json").read_text()
    assert _rows(pg)["openai_key"][1] is True
    settings_mod.update({"max_retries": None})
    assert "max_retries" not in _rows(pg) and settings_mod.load()["max_retries"] == 2  # removed: the default


def test_the_environment_wins_for_where_the_shared_state_is(synapse_env: Path, pg: str) -> None:
    _write_file(synapse_env, {"database_url": "sqlite:///elsewhere.db", "redis_url": "redis://file-redis:6379/0"})
    assert storage.database_url(settings_mod.load()) == storage.normalize_url(pg)  # SYNAPSE_DATABASE_URL wins
    from synapse.scale.shared import redis_url

    assert redis_url(settings_mod.load()) == "redis://file-redis:6379/0"
    os.environ["SYNAPSE_REDIS_URL"] = "redis://env-redis:6379/0"
    try:
        assert redis_url(settings_mod.load()) == "redis://env-redis:6379/0"
    finally:
        del os.environ["SYNAPSE_REDIS_URL"]


def test_scale_mode_refuses_to_start_without_the_secret_key(synapse_env: Path, pg: str, run_synapse: Any) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SYNAPSE_SECRET_KEY"}
    for args in (("config", "list"), ("serve", "--port", "0")):
        done = subprocess.run([sys.executable, "-m", "synapse.cli", *args], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2, done.stderr
        assert "SYNAPSE_SECRET_KEY" in done.stderr and "synapse secrets new" in done.stderr
        assert "Traceback" not in done.stderr
    made = run_synapse("secrets", "new")
    assert made.code == 0 and len(made.out.strip()) == 44  # a Fernet key
    os.environ["SYNAPSE_SECRET_KEY"] = made.out.strip()
    try:
        secrets._cache = None
        secrets.fernet()  # it is a usable key
    finally:
        os.environ["SYNAPSE_SECRET_KEY"] = TEST_SECRET_KEY
        secrets._cache = None


def test_rotating_the_secret_key_loses_no_key(synapse_env: Path, pg: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_mod.update({"anthropic_key": "sk-ant-api03-rotate-me-0001", "gemini_key": "AIzaRotateMe0002xxxxxx"})
    before = _rows(pg)["anthropic_key"][0]
    new = secrets.make_key()
    monkeypatch.setenv("SYNAPSE_SECRET_KEY", f"{new},{TEST_SECRET_KEY}")  # new first, old after it
    done = subprocess.run([sys.executable, "-m", "synapse.cli", "secrets", "rotate"], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "2 stored secret(s) re-encrypted" in done.stdout and "remove the old keys" in done.stdout
    assert _rows(pg)["anthropic_key"][0] != before
    monkeypatch.setenv("SYNAPSE_SECRET_KEY", new)  # the old key is gone: everything still opens
    settings_store.reset()
    settings_mod._scale_cache.clear()
    s = settings_mod.load()
    assert s["anthropic_key"] == "sk-ant-api03-rotate-me-0001" and s["gemini_key"] == "AIzaRotateMe0002xxxxxx"


def test_a_value_no_key_opens_stops_the_rotation_before_anything_is_written(
    synapse_env: Path, pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_mod.update({"anthropic_key": "sk-ant-api03-keep-me-0003"})
    before = _rows(pg)
    monkeypatch.setenv("SYNAPSE_SECRET_KEY", secrets.make_key())  # the old key forgotten
    done = subprocess.run([sys.executable, "-m", "synapse.cli", "secrets", "rotate"], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ))
    assert done.returncode == 2
    assert "cannot open" in done.stderr and "anthropic_key" in done.stderr and "Traceback" not in done.stderr
    assert _rows(pg) == before


def test_a_save_in_another_process_is_seen_within_a_second_without_redis(synapse_env: Path, pg: str) -> None:
    assert settings_mod.load()["model"] == ""
    done = subprocess.run([sys.executable, "-m", "synapse.cli", "config", "set", "model", "gpt-5"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    saved = time.monotonic()
    while settings_mod.load()["model"] != "gpt-5":
        assert time.monotonic() - saved < settings_store.POLL + 0.5
        time.sleep(0.05)


def test_with_redis_a_save_elsewhere_is_seen_at_once(synapse_env: Path, pg: str, redis_url: str) -> None:
    assert settings_mod.load()["model"] == ""
    store = settings_store.store_for(settings_store.scale_url({}))
    deadline = time.monotonic() + 5
    while not (store.listener is not None and store.listener.connected):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    done = subprocess.run([sys.executable, "-m", "synapse.cli", "config", "set", "model", "claude-sonnet-4-5"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    saved = time.monotonic()
    while store.listener.notices == 0:
        assert time.monotonic() - saved < 1.0
        time.sleep(0.01)
    assert settings_mod.load()["model"] == "claude-sonnet-4-5"  # the notice dropped the copy: read again


def test_the_database_down_keeps_the_last_settings(synapse_env: Path, pg: str, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    settings_mod.update({"model": "gpt-5"})
    assert settings_mod.load()["model"] == "gpt-5"
    store = settings_store.store_for(settings_store.scale_url({}))

    def down() -> dict[str, Any]:
        raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(store, "_read", down)
    for _ in range(3):
        store.invalidate()
        assert settings_mod.load()["model"] == "gpt-5"
    said = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(said) == 1  # once, not per read
