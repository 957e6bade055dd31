"""The CLI with bad or unusual input: one clear line, a non-zero exit, never a traceback.

Most cases run in-process (`cli`); the ones that depend on the real process (bytes on
stdin, exit codes, the environment) run `python -m synapse.cli` in a subprocess.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from synapse.cli import build_parser
from tests.conftest import provider_fake
from tests.fakes.ollama import OllamaFake


@pytest.fixture(scope="module")
def ollama_server() -> Any:
    yield from provider_fake(OllamaFake)


@pytest.fixture
def ollama(ollama_server: Any, configure: Any) -> Any:
    ollama_server.reset()
    configure(ollama_base_url=ollama_server.url, max_retries=0)
    return ollama_server


def _prompt_sent(fake: Any) -> str:
    return fake.last.json()["messages"][-1]["content"]


# --- help ---------------------------------------------------------------------------------


def _walk(parser: argparse.ArgumentParser, path: str) -> Any:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{path} {name}", "(command)", helps.get(name)
                yield from _walk(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, "/".join(action.option_strings) or action.dest, action.help


def test_every_command_and_option_has_help() -> None:
    items = list(_walk(build_parser(), "synapse"))
    assert len(items) > 40  # the walk reached the nested commands
    missing = [f"{path}: {name}" for path, name, text in items if not (text or "").strip()]
    assert missing == []
    commands = {path for path, name, _ in items if name == "(command)"}
    assert {"synapse config keys", "synapse doctor", "synapse usage", "synapse user set", "synapse embed"} <= commands


# --- chat input ------------------------------------------------------------------------------


def test_piped_stdin_follows_the_prompt(ollama: Any, cli: Any) -> None:
    res = cli("chat", "-m", "llama3.2", "summarise", stdin="line one\nline two\n")
    assert res.code == 0, res.err
    assert _prompt_sent(ollama) == "summarise\n\nline one\nline two\n"


def test_dash_reads_stdin_alone_and_empty_stdin_says_so(ollama: Any, cli: Any) -> None:
    assert cli("chat", "-m", "llama3.2", "-", stdin="only this").code == 0
    assert _prompt_sent(ollama) == "only this"
    res = cli("chat", "-m", "llama3.2", "-", stdin="")
    assert res.code == 2 and "standard input was empty" in res.err and res.err.count("\n") == 1


def test_json_errors_are_json_on_stdout_too(cli: Any) -> None:
    res = cli("chat", "--json", "-m", "claude-sonnet-4-5", "hi")
    assert res.code == 2
    assert json.loads(res.out) == {"error": {"kind": "not_configured", "message": res.err.strip()[len("synapse: "):]}}
    assert res.err.startswith("synapse: Anthropic Claude is not configured")
    res = cli("chat", "--json", "-m", "claude-sonnet-4-5", "-", stdin="")
    assert json.loads(res.out)["error"]["kind"] == "usage"
    res = cli("info", "--json", "--no-check", "--no-check")
    assert res.code == 0  # success output is unchanged


def test_provider_errors_keep_their_kind_in_json(ollama: Any, cli: Any) -> None:
    res = cli("chat", "--json", "-m", "no-such-model", "hi")
    assert res.code == 2 and json.loads(res.out)["error"]["kind"] == "unknown_model"


# --- usage ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--since", "2025-03-01", "--until", "2025-02-01"), "must come before --until"),
        (("--since", "1h", "--until", "2d"), "must come before --until"),
        (("--recent", "-3"), "must be 0 to 100000"),
        (("--recent", "99999999999999999999"), "must be 0 to 100000"),
        (("--since", "99999999999d"), "too far from today"),
        (("--since", "9999999999999999999999h", "--json"), "too far from today"),
        (("--recent", "many"), "is not a whole number"),
    ],
)
def test_usage_period_and_count_errors(cli: Any, capsys: Any, args: tuple[str, ...], words: str) -> None:
    try:
        res = cli("usage", *args)
        code, err = res.code, res.err
    except SystemExit as exit_:  # argparse rejects the option value itself
        code, err = int(exit_.code or 0), capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err


def test_usage_api_rejects_reversed_periods_too() -> None:
    from synapse.usage.report import PeriodError, period

    with pytest.raises(PeriodError):
        period("2025-03-01", "2025-02-01")
    start, end = period("2025-02-01", "2025-02-01")
    assert start is not None and end is not None and end - start == 86400  # one whole day


def test_csv_plain_decimals_and_no_formulas(synapse_env: Path, cli: Any) -> None:
    import csv
    import io
    import time

    from synapse import settings
    from synapse.client import CallContext, CallRecord
    from synapse.types import Usage
    from synapse.usage import flush, record

    s = settings.load()
    now = time.time()
    record(CallRecord("oaic", "=HYPERLINK(\"http://x\")", "=1+1", now - 60, 0.5, 0.2, Usage(3, 1), "ok", False,
                      CallContext(agent="@agent", session="-2+3"), settings=s))
    record(CallRecord("anthropic", "claude-haiku-4-5", "claude-haiku-4-5", now - 30, 0.5, 0.2, Usage(10, 1), "ok",
                      False, None, settings=s))
    assert flush(30)
    res = cli("usage", "--csv", "--since", "1h")
    assert res.code == 0, res.err
    assert "e-0" not in res.out and "E-0" not in res.out
    rows = list(csv.DictReader(io.StringIO(res.out)))
    evil, cheap = rows
    assert (evil["model"], evil["upstream_model"], evil["agent"], evil["session"]) == (
        "'=HYPERLINK(\"http://x\")", "'=1+1", "'@agent", "'-2+3")
    cost = float(cheap["cost_usd"])
    assert 0 < cost < 1e-4 and cheap["cost_usd"].startswith("0.0000")


# --- config ------------------------------------------------------------------------------------


def test_config_set_stores_json_numbers_and_checks_ranges(cli: Any, synapse_env: Path) -> None:
    assert cli("config", "set", "request_timeout", "30").code == 0
    assert cli("config", "set", "response_cache_similarity", "0.9").code == 0
    assert cli("config", "set", "max_retries", "0").code == 0
    on_disk = json.loads((synapse_env / "settings.json").read_text())
    assert on_disk == {"request_timeout": 30, "response_cache_similarity": 0.9, "max_retries": 0}
    for key, value, words in [
        ("request_timeout", "0", "request_timeout must be a number in (0, 86400]"),
        ("max_retries", "1.5", "max_retries must be a whole number in [0, 100]"),
        ("response_cache_similarity", "2", "in (0, 1]"),
        ("aws_region", "Frankfurt", "AWS region code"),
        ("ollama_base_url", "localhost:11434", "http:// or https:// URL"),
        ("mode", "hybrid", "one of: local, cloud, bedrock"),
    ]:
        res = cli("config", "set", key, value)
        assert res.code == 2 and words in res.err and res.err.count("\n") == 1, (key, res.err)
    assert json.loads((synapse_env / "settings.json").read_text()) == on_disk


def test_config_set_unknown_key_lists_the_known_ones(cli: Any, synapse_env: Path) -> None:
    res = cli("config", "set", "request_timout", "5")
    assert res.code == 2
    assert "did you mean 'request_timeout'?" in res.err and "response_cache_similarity" in res.err
    assert "--force" in res.err and not (synapse_env / "settings.json").exists()
    assert cli("config", "set", "my_note", "keep", "--force").code == 0
    assert json.loads((synapse_env / "settings.json").read_text()) == {"my_note": "keep"}


def test_config_set_reads_a_secret_from_stdin_when_no_value_is_given(cli: Any, synapse_env: Path) -> None:
    res = cli("config", "set", "openai_key", stdin="sk-proj-FROMSTDIN-0000-wxyz\n")
    assert res.code == 0 and "FROMSTDIN" not in res.out and "sk-proj-…wxyz" in res.out
    assert json.loads((synapse_env / "settings.json").read_text())["openai_key"] == "sk-proj-FROMSTDIN-0000-wxyz"


def test_config_unset_says_when_there_is_nothing_to_remove(cli: Any, synapse_env: Path) -> None:
    res = cli("config", "unset", "no_such_key")
    assert res.code == 2 and "unknown setting 'no_such_key'" in res.err
    res = cli("config", "unset", "request_timeout")
    assert res.code == 1 and "request_timeout is not set" in res.err and "default" in res.err
    cli("config", "set", "request_timeout", "30")
    res = cli("config", "unset", "request_timeout")
    assert res.code == 0 and res.out.strip() == "request_timeout removed (now 120 from default)"
    cli("config", "set", "legacy", "x", "--force")
    assert cli("config", "unset", "legacy").code == 0  # a custom key in the file can be removed


def test_config_keys_lists_every_setting_with_meaning_and_default(cli: Any) -> None:
    from synapse.settings import DEFAULTS

    res = cli("config", "keys")
    assert res.code == 0
    for key, default in DEFAULTS.items():
        assert f"{key}  (default {json.dumps(default)};" in res.out
    assert "seconds a whole call may take" in res.out
    rows = json.loads(cli("config", "keys", "--json").out)
    assert [r["key"] for r in rows] == list(DEFAULTS) and rows[0]["key"] == "mode"


# --- subprocess: bytes, files, environment ---------------------------------------------------


def test_invalid_utf8_on_stdin_is_one_line(run_synapse: Any, synapse_env: Path) -> None:
    import subprocess
    import sys

    for args in (["chat", "-m", "llama3.2", "-"], ["embed"], ["chat", "-m", "llama3.2", "summarise"]):
        proc = subprocess.run([sys.executable, "-m", "synapse.cli", *args], input=b"hi \xff there",
                              capture_output=True, timeout=60)
        err = proc.stderr.decode()
        assert proc.returncode == 2, (args, err)
        assert "Traceback" not in err and err.count("\n") == 1
        assert "standard input is not UTF-8 text (byte 3 is 0xff)" in err


@pytest.mark.parametrize(
    "args",
    [["info"], ["info", "--no-check"], ["config", "set", "model", "x"], ["config", "list"], ["chat", "-m", "x", "hi"],
     ["embed", "-m", "ollama.x", "a"], ["usage"], ["models"], ["doctor", "--no-check"]],
)
def test_a_data_folder_that_is_a_file_is_one_line(run_synapse: Any, tmp_path: Path, args: list[str]) -> None:
    data = tmp_path / "not-a-folder"
    data.write_text("oops")
    res = run_synapse(*args, env={"SYNAPSE_DATA_DIR": str(data)})
    assert res.code in (1, 2), res
    assert "Traceback" not in res.err and "unexpected" not in res.err
    assert f"{data} is a file" in res.err + res.out


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["serve"], {"SYNAPSE_PORT": "eighty"}, "SYNAPSE_PORT 'eighty' is not a port number"),
        (["serve", "--port", "70000"], {}, "must be 0 to 65535"),
        (["chat", "--max-tokens", "-5", "hi"], {}, "must be 1 to 10000000"),
        (["chat", "--max-tokens", "99999999999999999999", "hi"], {}, "must be 1 to 10000000"),
        (["chat", "--temperature", "warm", "hi"], {}, "invalid float value"),
        (["chat", "-m", "oaic.", "hi"], {}, "names no model"),
        (["config", "set", "model", "two words"], {}, "without spaces"),
        (["config", "get", "nope"], {}, "unknown setting 'nope'"),
        (["usage", "--since", "2030-01-01", "--until", "2020-01-01"], {}, "must come before --until"),
        (["user", "remove", "nobody"], {}, "nobody"),
    ],
)
def test_bad_input_never_shows_a_traceback(run_synapse: Any, args: list[str], env: dict[str, str], words: str) -> None:
    res = run_synapse(*args, env=env)
    assert res.code != 0
    assert "Traceback" not in res.err and "unexpected" not in res.err
    assert words in res.err


def test_settings_json_that_is_a_folder_or_not_utf8(run_synapse: Any, synapse_env: Path) -> None:
    synapse_env.mkdir(parents=True)
    (synapse_env / "settings.json").mkdir()
    res = run_synapse("config", "list")
    assert res.code == 2 and "Traceback" not in res.err and "settings.json" in res.err
    (synapse_env / "settings.json").rmdir()
    (synapse_env / "settings.json").write_bytes(b'{"model": "caf\xe9"}')
    (synapse_env / "settings.json").chmod(0o600)
    res = run_synapse("info", "--no-check")
    assert res.code == 2 and "not UTF-8" in res.err and res.err.count("\n") == 1


def test_serve_port_0_takes_a_free_port(synapse_env: Path) -> None:
    import os
    import re
    import subprocess
    import sys
    import time

    env = {**os.environ, "SYNAPSE_PORT": ""}
    proc = subprocess.Popen([sys.executable, "-m", "synapse.cli", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "running at" not in line:
            line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match is not None, line
        assert int(match.group(1)) not in (0, 8000)
    finally:
        proc.terminate()
        proc.wait(10)
