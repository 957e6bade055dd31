"""Pooled connections belong to an event loop and close with it: `asyncio.run(achat())` in
a loop leaves no socket and no "Unclosed client session"; `aclose()` and `closing()` close
them early."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import synapse
from synapse.providers import transport

ROOT = Path(__file__).parent.parent

COUNT_SOCKETS = """
    import os
    def sockets():
        n = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
            except OSError:
                pass
        return n
"""


def run_child(code: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYNAPSE_DATA_DIR": str(data), "NO_PROXY": "127.0.0.1,localhost", "PYTHONDEVMODE": ""}
    return subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", textwrap.dedent(COUNT_SOCKETS) + textwrap.dedent(code)],
        capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=120,
    )


def assert_quiet(stderr: str) -> None:
    for noise in ("Unclosed", "unclosed", "ResourceWarning", "Exception ignored", "Traceback"):
        assert noise not in stderr, stderr[-3000:]


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts file descriptors in /proc")
def test_300_asyncio_runs_leave_no_socket_and_no_warning(anthropic: Any, synapse_env: Path) -> None:
    result = run_child(
        """
        import asyncio, gc
        import synapse
        asyncio.run(synapse.achat("claude-sonnet-4-5", "warm up"))
        gc.collect()
        before = sockets()
        for _ in range(300):
            asyncio.run(synapse.achat("claude-sonnet-4-5", "hi"))
        gc.collect()
        print(before, sockets())
        """,
        synapse_env,
    )
    assert result.returncode == 0, result.stderr
    before, after = map(int, result.stdout.split())
    assert after == before  # was before + 300: one pooled socket per abandoned loop
    assert_quiet(result.stderr)
    assert len(anthropic.requests) == 301


def test_sync_and_asyncio_run_calls_mixed_exit_quietly(anthropic: Any, synapse_env: Path) -> None:
    result = run_child(
        """
        import asyncio
        import synapse
        synapse.chat("claude-sonnet-4-5", "sync")
        asyncio.run(synapse.achat("claude-sonnet-4-5", "async"))
        for event in synapse.stream("claude-sonnet-4-5", "sync stream"):
            pass
        asyncio.run(synapse.achat("claude-sonnet-4-5", "async again"))
        print("done")
        """,
        synapse_env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert_quiet(result.stderr)


def test_a_hand_made_loop_closes_its_session_when_it_closes(anthropic: Any) -> None:
    loop = asyncio.new_event_loop()
    try:
        async def call() -> Any:
            await synapse.achat("claude-sonnet-4-5", "hi")
            return transport.session()

        session = loop.run_until_complete(call())
        assert not session.closed
    finally:
        loop.close()
    assert session.closed
    assert loop.is_closed()


async def test_aclose_closes_this_loops_connections_and_the_next_call_reconnects(anthropic: Any) -> None:
    await synapse.achat("claude-sonnet-4-5", "one")
    first = transport.session()
    await synapse.aclose()
    assert first.closed
    await synapse.achat("claude-sonnet-4-5", "two")
    assert transport.session() is not first
    assert len(anthropic.requests) == 2


async def test_closing_closes_the_connections_when_the_block_ends_even_on_error(anthropic: Any) -> None:
    with pytest.raises(RuntimeError):
        async with synapse.closing():
            await synapse.achat("claude-sonnet-4-5", "hi")
            inside = transport.session()
            raise RuntimeError("the caller's own failure")
    assert inside.closed


def test_aclose_and_closing_are_public() -> None:
    assert "aclose" in synapse.__all__ and "closing" in synapse.__all__
    assert synapse.aclose.__doc__ and synapse.closing.__doc__
