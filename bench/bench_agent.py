"""What the agent loop adds per model call over `synapse.achat`.

A minimal OpenAI-style upstream in a separate process answers every call at once (with a
tool call when the prompt asks for one). In the same run:

* baseline: `achat` with the same system prompt, tools and history the agent sends;
* agent: `Agent.arun` turns, each continuing a stored two-message session (SQLite, WAL)
  like the baseline's history, each turn one model call;
* agent, tool rounds: turns where the model calls a tool 3 times before it answers
  (4 model calls a turn): the per-turn costs spread over more calls;
* continued sessions: what a chat does, turn after turn in the same session (20 sessions
  in turn, so each grows to about N/10 messages); its baseline is `achat` with the same
  session's history as it stands before the turn (read outside the timing). Here the
  process holds each session's rows between turns (sessions.py), so a turn reads one row.

The first rows use a new two-message session per turn: sessions this process has not
read yet, so every turn reads the whole history (the cold case).

    .venv/bin/python bench/bench_agent.py [turns]

The added time per model call is (agent turn time - calls x baseline call time) / calls,
at the median. Results are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300


def _completion(message: dict) -> bytes:
    return json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4.1",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if "tool_calls" in message else "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55, "prompt_tokens_details": {"cached_tokens": 0}},
    }).encode()


def upstream(port: int) -> None:
    from aiohttp import web

    answer = _completion({"role": "assistant", "content": "ok"})

    async def handle(request: web.Request) -> web.Response:
        msgs = json.loads(await request.read())["messages"]
        last_user = max(i for i, m in enumerate(msgs) if m["role"] == "user")
        rounds = sum(1 for m in msgs[last_user + 1:] if m["role"] == "tool")
        if "use tools" in json.dumps(msgs[last_user].get("content")) and rounds < 3:
            call = {"id": f"call_{rounds}", "type": "function", "function": {"name": "echo", "arguments": '{"text": "x"}'}}
            return web.Response(body=_completion({"role": "assistant", "content": None, "tool_calls": [call]}), content_type="application/json")
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def echo(text: str) -> str:
    """Echo the text back."""
    return text


async def main() -> None:
    port = free_port()
    proc = multiprocessing.Process(target=upstream, args=(port,), daemon=True)
    proc.start()
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    os.environ["SYNAPSE_DATA_DIR"] = tempfile.mkdtemp()
    import synapse
    from synapse import settings
    from synapse.agents.loop import system_parts
    from synapse.providers.transport import close_session
    from synapse.types import Message, TextPart

    settings.update({"openai_key": "sk-bench-0000000000", "openai_base_url": f"http://127.0.0.1:{port}/v1",
                     "model": "gpt-4.1"})
    agent = synapse.Agent(name="bench", system="You are a benchmark.", tools=[echo])
    tools = [t.spec for t in agent.tools.values()]
    history = [Message("user", [TextPart("hello")]), Message("assistant", [TextPart("ok")])]
    system = system_parts("You are a benchmark.")

    async def baseline() -> None:
        await synapse.achat("gpt-4.1", [*history, Message("user", [TextPart("next")])],
                            system=system, tools=tools)

    async def turn() -> None:  # each turn continues a two-message session, like the baseline's history
        sid = sessions.pop()
        await agent.arun("next", session_id=sid)

    async def tool_turn() -> None:
        result = await agent.arun("use tools", session_id=sessions.pop())
        assert len(result.tool_calls) == 3, result

    from synapse.agents.sessions import SessionStore

    store = SessionStore()
    sessions = []
    for _ in range(2 * N + 40):
        info = store.create(None, "bench", "t")
        store.append(info.id, [(history[0], {}), (history[1], {})])
        sessions.append(info.id)
    from synapse.agents.sessions import replay

    continued = []
    for _ in range(20):
        info = store.create(None, "bench", "t")
        store.append(info.id, [(history[0], {}), (history[1], {})])
        continued.append(info.id)
    warm_history: list[Message] = []

    async def warm_baseline() -> None:
        await synapse.achat("gpt-4.1", [*warm_history, Message("user", [TextPart("next")])], system=system, tools=tools)

    async def warm_turn() -> None:
        await agent.arun("next", session_id=continued[0])

    # Interleaved (baseline, agent, baseline, agent, ...) so both see the same machine load.
    for fn in (baseline, turn, tool_turn):
        for _ in range(10):
            await fn()
    samples: dict[str, list[float]] = {"base": [], "turn": [], "tools": [], "warm base": [], "warm": []}
    for i in range(N):
        for key, fn in (("base", baseline), ("turn", turn)) + ((("tools", tool_turn),) if i % 2 == 0 else ()):
            t0 = time.perf_counter()
            await fn()
            samples[key].append(time.perf_counter() - t0)
        continued.append(continued.pop(0))
        warm_history = replay(store.messages(continued[0]))  # untimed: the baseline sends the same history
        for key, fn in (("warm base", warm_baseline), ("warm", warm_turn)):
            t0 = time.perf_counter()
            await fn()
            samples[key].append(time.perf_counter() - t0)
    base = statistics.median(samples["base"])
    warm_base = statistics.median(samples["warm base"])
    rows = [("achat (baseline)", base, base, 1), ("agent turn, 1 model call", statistics.median(samples["turn"]), base, 1),
            ("agent turn, 3 tool rounds (4 calls)", statistics.median(samples["tools"]), base, 4),
            ("achat, continued history (baseline)", warm_base, warm_base, 1),
            ("agent turn, continued session", statistics.median(samples["warm"]), warm_base, 1)]
    for label, t, b, calls in rows:
        added = (t - calls * b) / calls
        print(f"{label:<40} median {t * 1000:7.3f} ms   added per model call {added * 1000:6.3f} ms"
              f"   ratio {t / (calls * b):.2f}x")
    await close_session()
    proc.terminate()


if __name__ == "__main__":
    asyncio.run(main())
