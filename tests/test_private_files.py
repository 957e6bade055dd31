"""The data folder and its files are private; saves survive symlinks and kill -9."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from synapse import settings
from synapse.private_files import fix, problems

KEY = "sk-ant-api03-PRIVATE-KEY-0000-abcd"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_folder_is_created_private(synapse_env: Path) -> None:
    settings.update({"anthropic_key": KEY})
    assert mode(synapse_env) == 0o700
    assert mode(synapse_env / "settings.json") == 0o600


def test_database_and_response_cache_files_are_private(synapse_env: Path) -> None:
    from synapse import storage
    from synapse.caching import response_cache

    storage.engine(settings=settings.load())  # creates and migrates synapse.db (WAL mode)
    cache = response_cache(settings.load())
    from synapse.types import Response, Usage

    cache.put("k", "m", Response(text="a private reply", tool_calls=[], stop_reason="end_turn", usage=Usage(),
                                 provider="ollama", model="m"))
    assert mode(synapse_env) == 0o700 and mode(synapse_env / "cache") == 0o700
    private = [p for p in [*synapse_env.iterdir(), *(synapse_env / "cache").iterdir()]
               if p.is_file() and not p.name.endswith(".lock")]
    names = {p.name for p in private}
    assert {"synapse.db", "responses.sqlite3", "responses.sqlite3-wal"} <= names
    assert {p.name: oct(mode(p)) for p in private} == {p.name: oct(0o600) for p in private}
    assert problems(synapse_env) == []


def test_symlinked_settings_are_written_through_to_the_target(synapse_env: Path, tmp_path: Path) -> None:
    synapse_env.mkdir(parents=True)
    target_dir = tmp_path / "dotfiles"
    target_dir.mkdir()
    target = target_dir / "synapse-settings.json"
    target.write_text('{"model": "claude-sonnet-4-5"}')
    link = synapse_env / "settings.json"
    link.symlink_to(target)
    settings.update({"anthropic_key": KEY})
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text()) == {"model": "claude-sonnet-4-5", "anthropic_key": KEY}
    assert mode(target) == 0o600
    assert settings.load()["anthropic_key"] == KEY
    assert sorted(p.name for p in target_dir.iterdir()) == ["synapse-settings.json"]  # no temp file left


_KILLED_SAVE = """
import os, sys, time
from synapse import settings
def hang(fd):
    print("writing", flush=True)
    time.sleep(60)
os.fsync = hang  # stop inside write_private, after the key is in the temp file
settings.update({"anthropic_key": sys.argv[1]})
"""


def test_kill_9_during_a_save_leaves_no_key_behind_after_the_next_start(synapse_env: Path, run_synapse: Any) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, KEY], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    temps = list(synapse_env.glob(".settings.json.*.tmp"))
    assert len(temps) == 1 and KEY in temps[0].read_text()
    res = run_synapse("config", "get", "model")
    assert res.code == 0
    assert list(synapse_env.glob(".settings.json.*.tmp")) == []


def test_a_running_save_keeps_its_temp_file(synapse_env: Path) -> None:
    settings.update({"model": "x"})
    tmp = synapse_env / ".settings.json.inflight.tmp"
    tmp.write_text("{}")
    with open(synapse_env / "settings.json.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # another process is saving right now
        assert settings.remove_stale_temp_files() == []
        assert tmp.exists()
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    assert settings.remove_stale_temp_files() == [tmp] and not tmp.exists()


def test_a_save_removes_stale_temp_files(synapse_env: Path) -> None:
    settings.update({"model": "x"})
    (synapse_env / ".settings.json.old1.tmp").write_text(KEY)
    settings.update({"model": "y"})
    assert sorted(p.name for p in synapse_env.iterdir()) == ["settings.json", "settings.json.lock"]


def test_readable_settings_warn_on_every_command_until_fixed(synapse_env: Path, cli: Any) -> None:
    settings.update({"anthropic_key": KEY})
    path = synapse_env / "settings.json"
    path.chmod(0o644)
    for args in (["config", "get", "model"], ["info", "--no-check"], ["usage"]):
        res = cli(*args)
        assert res.code == 0
        assert f"warning: {path} can be read by other users (mode 0644)" in res.err
        assert "synapse doctor --fix" in res.err and KEY not in res.err
    res = cli("doctor", "--no-check")
    assert res.code == 1 and f"PROBLEM  permissions: {path} can be read by other users (mode 0644)" in res.out
    res = cli("doctor", "--fix", "--no-check")
    assert f"{path}: mode 0644 -> 0600" in res.out
    assert mode(path) == 0o600
    assert cli("config", "get", "model").err == ""


def test_doctor_fix_makes_the_folder_and_databases_private(synapse_env: Path, cli: Any) -> None:
    from synapse import storage

    storage.engine(settings=settings.load())
    synapse_env.chmod(0o755)
    (synapse_env / "synapse.db").chmod(0o644)
    assert {p for p, _, _ in problems(synapse_env)} == {synapse_env, synapse_env / "synapse.db"}
    changed = fix(synapse_env)
    assert {(p, m, w) for p, m, w in changed} == {(synapse_env, 0o755, 0o700), (synapse_env / "synapse.db", 0o644, 0o600)}
    assert problems(synapse_env) == []


@pytest.mark.parametrize("link_target_mode", [0o640])
def test_a_readable_symlink_target_is_reported_and_fixed(synapse_env: Path, tmp_path: Path, link_target_mode: int) -> None:
    synapse_env.mkdir(parents=True, mode=0o700)
    target = tmp_path / "real.json"
    target.write_text("{}")
    target.chmod(link_target_mode)
    (synapse_env / "settings.json").symlink_to(target)
    assert [m for _, m, _ in problems(synapse_env)] == [link_target_mode]
    fix(synapse_env)
    assert mode(target) == 0o600 and (synapse_env / "settings.json").is_symlink()
