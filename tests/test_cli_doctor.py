"""`synapse info` shows whether each provider answers; `synapse doctor` says what to fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synapse import settings, storage
from tests.conftest import provider_fake
from tests.fakes.base import free_port
from tests.fakes.ollama import OllamaFake


@pytest.fixture(scope="module")
def ollama_server() -> Any:
    yield from provider_fake(OllamaFake)


def _provider(info: dict[str, Any], pid: str) -> dict[str, Any]:
    return next(p for p in info["providers"] if p["id"] == pid)


def test_info_says_ollama_is_not_running_instead_of_configured(cli: Any, configure: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    configure(ollama_base_url=url)
    res = cli("info")
    assert res.code == 0
    line = next(ln for ln in res.out.splitlines() if ln.strip().startswith("Ollama (Local)"))
    assert f"Cannot reach the base URL at {url}" in line and "configured" not in line
    status = _provider(json.loads(cli("info", "--json").out), "ollama")["status"]
    assert status["state"] == "error" and status["reason"] == "Cannot reach the base URL"


def test_info_shows_a_running_ollama_and_its_models(cli: Any, configure: Any, ollama_server: Any) -> None:
    ollama_server.reset()
    configure(ollama_base_url=ollama_server.url)
    out = cli("info").out
    assert f"Ollama (Local)         connected at {ollama_server.url} (5 models)" in out
    assert "mode:          local (bare model names go to Ollama (Local))" in out


def test_info_checks_cloud_providers_live(cli: Any, anthropic: Any, configure: Any) -> None:
    out = cli("info").out
    assert "Anthropic Claude       connected (" in out
    configure(anthropic_key="sk-ant-api03-wrong-key-000000000000")
    data = json.loads(cli("info", "--json").out)
    assert _provider(data, "anthropic")["status"]["reason"] == "Invalid key"
    assert "wrong-key" not in json.dumps(data)
    assert "status" not in _provider(data, "gemini")  # not set up: not contacted


def test_info_no_check_contacts_nobody(cli: Any, anthropic: Any) -> None:
    before = len(anthropic.requests)
    res = cli("info", "--no-check")
    assert res.code == 0 and "Anthropic Claude       configured" in res.out
    assert len(anthropic.requests) == before


def test_doctor_all_good(cli: Any, anthropic: Any, configure: Any, ollama_server: Any) -> None:
    ollama_server.reset()
    configure(ollama_base_url=ollama_server.url, model="claude-sonnet-4-5")
    res = cli("doctor")
    assert res.code == 0, res.out
    assert "ok       Anthropic Claude: connected" in res.out
    assert "ok       database: " in res.out and f"migrated to {storage.HEAD_REVISION}" in res.out
    assert "ok       model: default model claude-sonnet-4-5 goes to Anthropic Claude" in res.out
    assert res.out.strip().endswith("no problems found")


def test_doctor_names_each_problem_and_its_fix(cli: Any, anthropic: Any, configure: Any, synapse_env: Path) -> None:
    configure(anthropic_key="sk-ant-api03-wrong-key-000000000000", model="gpt-5")
    path = synapse_env / "settings.json"
    data = json.loads(path.read_text())
    data.update({"request_timeout": -1, "max_retries": "lots", "antropic_key": "x"})
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    settings._cache.clear()
    res = cli("doctor", "--json")
    assert res.code == 1
    report = json.loads(res.out)
    assert report["ok"] is False
    problems = {(f["area"], f["message"]) for f in report["findings"] if f["level"] == "problem"}
    assert ("settings", "settings.json: request_timeout must be a number in (0, 86400]") in problems
    assert ("settings", "settings.json: max_retries must be a whole number in [0, 100]") in problems
    assert ("model", "default model gpt-5 goes to OpenAI, which is not set up") in problems
    assert any(area == "Anthropic Claude" and "Invalid key" in message for area, message in problems), json.dumps(report["findings"])
    notes = [f for f in report["findings"] if f["level"] == "note"]
    assert any("antropic_key is not a Synapse setting" in f["message"] and "anthropic_key" in f["fix"] for f in notes)
    assert "wrong-key" not in res.out


def test_doctor_reports_a_database_it_cannot_open(cli: Any, configure: Any, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    configure(database_url=f"sqlite:///{tmp_path}/blocker/sub/synapse.db")
    res = cli("doctor", "--no-check")
    assert res.code == 1
    line = next(ln for ln in res.out.splitlines() if "database:" in ln)
    assert line.startswith("PROBLEM") and "blocker/sub/synapse.db: cannot open it" in line


def test_doctor_in_scale_mode_says_what_the_shared_database_needs(
    cli: Any, configure: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(database_url="postgresql+psycopg://synapse:hunter2-db@127.0.0.1:1/synapse")
    res = cli("doctor", "--no-check")
    assert res.code == 1 and "PROBLEM  secret key:" in res.out and "synapse secrets new" in res.out
    monkeypatch.setenv("SYNAPSE_SECRET_KEY", "q3rrhxDkoQ6gKk0pu9pKMxFObUQq7m8F8X0eJfz0SdM=")
    res = cli("doctor", "--no-check")
    assert res.code == 1 and "PROBLEM  database: cannot read the settings from the database (127.0.0.1:1/synapse)" in res.out
    assert "start PostgreSQL" in res.out and "hunter2" not in res.out


def test_usage_with_a_database_it_cannot_open_is_one_line(cli: Any, configure: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(database_url="postgresql+psycopg://synapse:hunter2-db@127.0.0.1:1/synapse")
    monkeypatch.setenv("SYNAPSE_SECRET_KEY", "q3rrhxDkoQ6gKk0pu9pKMxFObUQq7m8F8X0eJfz0SdM=")
    res = cli("usage")
    assert res.code == 2 and res.err.startswith("synapse: cannot read the settings from the database (127.0.0.1:1/synapse)")
    assert "hunter2" not in res.err and res.err.count("\n") == 1
