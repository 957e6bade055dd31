"""`synapse agents ...` and `synapse chat --agent` (in-process, and on a real terminal)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from synapse.agents.sessions import SessionStore
from tests.fakes.base import FakeToolCall

from .conftest import Proto


def test_agents_create_show_edit_list_delete(cli: Any, tmp_path: Path) -> None:
    prompt = tmp_path / "system.md"
    prompt.write_text("You are a pirate.\nSay arr.", encoding="utf-8")
    r = cli("agents", "create", "Pirate", "--model", "oaic.meta-llama/llama-3-70b-instruct", "--system-file", str(prompt),
            "--tools", "calculator,current_time", "--max-cost", "0.25")
    assert r.code == 0 and r.out.startswith("created Pirate (agent-")
    shown = json.loads(cli("agents", "show", "pirate", "--json").out)
    assert shown["model"] == "oaic.meta-llama/llama-3-70b-instruct" and shown["system_prompt"] == "You are a pirate.\nSay arr."
    assert shown["tools"] == ["calculator", "current_time"] and shown["max_total_cost_usd"] == 0.25
    assert cli("agents", "edit", "Pirate", "--model", "(default)", "--name", "Captain").code == 0
    listing = cli("agents", "list").out
    assert "Captain" in listing and "(default)" in listing and "Assistant" in listing
    assert "You are a pirate." in cli("agents", "show", "captain").out
    bad = cli("agents", "edit", "Captain", "--tools", "rm_rf")
    assert bad.code == 2 and "unknown tool 'rm_rf'" in bad.err
    assert cli("agents", "edit", "Captain").code == 2  # nothing to change
    r = cli("agents", "delete", "Captain")  # no terminal to confirm on
    assert r.code == 2 and "--yes" in r.err
    assert cli("agents", "delete", "Captain", "--yes").code == 0
    missing = cli("agents", "show", "Captain")
    assert missing.code == 2 and "known agents: Assistant" in missing.err


def test_agents_export_and_import(cli: Any, tmp_path: Path) -> None:
    cli("agents", "create", "Writer", "--system", "Write.")
    out = tmp_path / "agents.json"
    assert cli("agents", "export", "-o", str(out)).code == 0
    assert [a["name"] for a in json.loads(out.read_text())["agents"]] == ["Assistant", "Writer"]
    cli("agents", "delete", "Writer", "--yes")
    one = {"name": "Writer", "system_prompt": "Write well."}
    r = cli("agents", "import", "-", stdin=json.dumps(one))
    assert r.code == 0 and "imported Writer" in r.out
    assert cli("agents", "import", str(out)).code == 2  # names exist
    assert cli("agents", "import", str(out), "--replace").code == 0
    assert json.loads(cli("agents", "show", "writer", "--json").out)["system_prompt"] == "Write."
    assert "not JSON" in cli("agents", "import", "-", stdin="{nope").err


def test_chat_with_an_agent_runs_tools_and_prints_the_session_on_stderr(cli: Any, use_proto: Any) -> None:
    proto: Proto = use_proto("anthropic")
    proto.fake.reply(proto.reply(tool_calls=[FakeToolCall("toolu_1", "calculator", {"expression": "6*7"})]),
                     proto.reply(text="It is 42."))
    r = cli("chat", "--agent", "assistant", "What is 6*7?")
    assert r.code == 0 and r.out == "It is 42.\n"
    assert "→ calculator(" in r.err and "← calculator: 42" in r.err and "claude-sonnet-4-5" in r.err
    session = r.err.split("session: ")[1].split()[0]
    proto.fake.reply(proto.reply(text="Still 42."))
    r2 = cli("chat", "--agent", "Assistant", "--session", session, "--json", "Sure?")
    data = json.loads(r2.out)
    assert data["response"] == "Still 42." and data["session_id"] == session
    assert len(SessionStore().messages(session)) == 6


def test_chat_with_an_unknown_agent_says_which_exist(cli: Any, use_proto: Any) -> None:
    use_proto("anthropic")
    r = cli("chat", "--agent", "Nobody", "hi")
    assert r.code == 2 and "no agent 'Nobody'; known agents: Assistant" in r.err


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_interactive_chat_on_a_terminal(use_proto: Any, synapse_env: Path) -> None:
    """A real terminal: the prompt, a streamed reply, Ctrl+C stops a reply, /new, /exit."""
    import pty
    import select
    import subprocess

    import threading

    proto: Proto = use_proto("anthropic")
    # The long reply sends three words, then waits for a go-ahead that never comes: however
    # slow this machine is, the reply is still streaming when Ctrl+C arrives.
    hold = threading.Semaphore(3)
    proto.fake.reply(proto.reply(text="Hello there."), proto.reply(text="word " * 300, step=hold),
                     proto.reply(text="Fresh start."))
    master, slave = pty.openpty()
    env = {**os.environ, "SYNAPSE_DATA_DIR": str(synapse_env), "NO_PROXY": "127.0.0.1,localhost", "TERM": "dumb"}
    def controlling_tty() -> None:  # the pty becomes the child's terminal, so Ctrl+C is a SIGINT
        import fcntl
        import signal
        import termios

        # A shell that started this run in the background left SIGINT ignored, and an ignored
        # signal stays ignored across exec: give the child the default, as a terminal would.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, "-m", "synapse.cli", "chat", "--agent", "Assistant"],
                            stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True, preexec_fn=controlling_tty)
    os.close(slave)
    seen = b""

    def read_until(marker: bytes, timeout: float = 20) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen:
            assert time.monotonic() < deadline, f"no {marker!r} in {seen[-500:]!r}"
            if select.select([master], [], [], 0.1)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break

    try:
        read_until(b"you \xe2\x80\xba ")
        os.write(master, b"hi\n")
        read_until(b"Hello there.")
        read_until(b"you \xe2\x80\xba ", 10)
        seen = b""
        os.write(master, b"talk\n")
        read_until(b"word word word")
        os.write(master, b"\x03")  # Ctrl+C
        read_until(b"[stopped")
        read_until(b"you \xe2\x80\xba ")
        os.write(master, b"/new\n")
        read_until(b"(new session)")
        os.write(master, b"again\n")
        read_until(b"Fresh start.")
        os.write(master, b"/exit\n")
        assert proc.wait(10) == 0
    finally:
        for _ in range(300):
            hold.release()  # let the fake's held stream finish (to a closed connection)
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    sessions = SessionStore().list()
    assert len(sessions) == 2
    stopped = SessionStore().messages(sessions[1].id)[-1]
    assert stopped.meta.get("stopped") is True and stopped.message.text.startswith("word word")
