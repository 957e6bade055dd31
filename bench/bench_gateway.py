"""The /v1 gateway under load: `synapse serve` vs. the upstream called directly, a bare
Python pass-through, and the LiteLLM proxy, in one run on this machine.

    .venv/bin/python bench/bench_gateway.py [--seconds 10] [--no-litellm] [--only NAME,...]
        [--baseline DIR] [--rounds N] [--litellm-venv DIR]

`--baseline DIR` runs a second `synapse serve` from another source tree (e.g. `git archive
main | tar -x -C DIR`) beside this one, and measures the two alternately, `--rounds` times
(medians reported), so both see the same machine: the ratio is the result, not the rate.

What runs where (2 cores): the gateway under test is pinned to CPU 0 (`taskset`); the
fake upstream and the load generator (wrk, from Debian: `apt-get install wrk`) share
CPU 1, so the gateway has one core to itself, as "one synapse serve process" means.
`--workers 2` runs unpinned (it needs both cores and shares them with the load).

* upstream: a raw asyncio (uvloop) HTTP/1.1 server in its own process, answering
  POST /v1/chat/completions and /v1/messages with a fixed body, or (with "stream": true)
  an SSE stream whose first byte comes after `--first-byte-ms` (50) and then one event
  every `--event-ms` (10). It is not the bottleneck: see its own row.
* synapse serve: the real command, usage ledger and prompt-cache planning on (defaults),
  an API key checked on every request, access log as shipped.
* bare pass-through: raw ASGI under uvicorn (uvloop, httptools) forwarding the body to
  the upstream with the pooled aiohttp session and orjson; what DESIGN.md calls the floor.
* LiteLLM proxy: `litellm[proxy]` in its own venv (bench/.litellm-venv, made on first
  run), one model pointing at the same upstream.

Non-streaming rows: wrk, c=64 (throughput) and c=1 (latency; "added" = minus direct).
Streaming: time to the first event and the gaps between events, through the gateway vs.
direct (an aiohttp client on CPU 1). Memory: the gateway's RSS after 50,000 and
100,000 requests. Start: `synapse serve` launched until its first /v1 answer.
Results go to bench/RESULTS.md by hand, with the date and these conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
LITELLM_VENV = ROOT / "bench" / ".litellm-venv"
LITELLM_KEY = "sk-bench-litellm-master-0000"

CHAT = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "gpt-bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13,
              "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
}).encode()
MESSAGE = json.dumps({
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench",
    "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
}).encode()
OPENAI_REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say ok"}], "max_tokens": 16}
ANTHROPIC_REQUEST = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "Say ok"}]}


def _response(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body)


def _openai_events(n: int) -> list[bytes]:
    head = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 0, "model": "gpt-bench"}
    out = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    out += [{**head, "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]} for i in range(n)]
    out.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out.append({**head, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n}})
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in out] + [b"data: [DONE]\n\n"]


# --- the upstream: raw asyncio, as cheap as an HTTP server gets in Python -------------------------


def upstream(port: int, first_byte_ms: float, event_ms: float) -> None:
    import uvloop

    chat, message = _response(CHAT), _response(MESSAGE)
    events = _openai_events(10)

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buf[:end].lower()
                i = head.find(b"content-length:")
                n = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None]) if i >= 0 else 0
                if len(self.buf) < end + 4 + n:
                    return
                body = self.buf[end + 4:end + 4 + n]
                self.buf = self.buf[end + 4 + n:]
                if b'"stream":true' in body.replace(b" ", b""):
                    asyncio.ensure_future(self.stream(time.monotonic()))
                elif b"/v1/messages" in head[:64]:
                    self.t.write(message)
                else:
                    self.t.write(chat)

        async def stream(self, received: float) -> None:
            await asyncio.sleep(first_byte_ms / 1000)
            self.t.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            for k, ev in enumerate(events):
                if k:
                    await asyncio.sleep(event_ms / 1000)
                else:  # the first event says when the request came and when the event left (CLOCK_MONOTONIC)
                    ev = ev.replace(b'"id": "chatcmpl-s"', b'"id": "chatcmpl-s", "bench": [%r, %r]' % (received, time.monotonic()), 1)
                self.t.write(f"{len(ev):x}\r\n".encode() + ev + b"\r\n")
            self.t.write(b"0\r\n\r\n")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Proto, "127.0.0.1", port, backlog=4096)
        await server.serve_forever()

    uvloop.run(main())


# --- the bare pass-through (the floor a Python gateway can reach) --------------------------------


def passthrough(port: int, upstream_port: int) -> None:
    import aiohttp
    import orjson
    import uvicorn

    target = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
    state: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    state["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await state["s"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        data = orjson.loads(body)
        data["model"] = "gpt-bench"
        async with state["s"].post(target, data=orjson.dumps(data), headers={"content-type": "application/json"}) as r:
            out = await r.read()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": out})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- helpers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process for port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


def spawn(args: list[str], cpu: str | None, env: dict[str, str] | None = None, log: Path | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    cmd = (["taskset", "-c", cpu] if cpu is not None and shutil.which("taskset") else []) + args
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (the usage writer's too)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, run: Any, cpu: Any = None) -> dict[str, Any]:
    """`run()` (a wrk result) plus the CPU the process at `pid` spent per request: unlike
    requests/s, that number depends little on what else the machine is doing."""
    cpu = cpu or cpu_seconds
    before = cpu(pid)
    r = run()
    r["cpu_us"] = (cpu(pid) - before) / max(1, r["requests"]) * 1e6
    return r


def median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each number over rounds (the first round's text)."""
    out = dict(results[0])
    for k in ("rps", "p50", "p99", "cpu_us"):
        vals = [r[k] for r in results if k in r]
        if vals:
            out[k] = statistics.median(vals)
    out["requests"] = sum(r["requests"] for r in results)
    out["non2xx"] = sum(r["non2xx"] for r in results)
    out["rounds"] = [round(r.get("cpu_us", 0.0)) for r in results]
    return out


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, body: dict[str, Any], headers: dict[str, str], conns: int, seconds: float, cpu: str = "1") -> dict[str, Any]:
    """wrk POSTing `body`: requests/s, p50/p99 latency (ms), total requests, errors."""
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps(body))}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    lua.write("\n".join(lines) + "\n")
    lua.close()
    cmd = ["taskset", "-c", cpu] if cpu and shutil.which("taskset") else []
    cmd += ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency", "-s", lua.name, url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    os.unlink(lua.name)

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "p50": pct("50"), "p99": pct("99"),
            "requests": int(total.group(1)) if total else 0, "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errs.group(1) if errs else "", "raw": out}


async def stream_timings(url: str, body: dict[str, Any], headers: dict[str, str], n: int) -> dict[str, float]:
    """Median time to the first `data:` event and the largest gap between events (ms).

    The upstream stamps its first event with when the request reached it and when the
    event left it (CLOCK_MONOTONIC, shared by every process here), so the time to the
    first event splits into the way there (`to_upstream`), the upstream's own 50 ms, and
    the way back (`back`): what a gateway adds is in the two ways, whatever the timer did."""
    import aiohttp

    firsts: list[float] = []
    gaps: list[float] = []
    there: list[float] = []
    back: list[float] = []
    async with aiohttp.ClientSession() as s:
        for i in range(n + 3):
            t0 = time.monotonic()
            seen: list[float] = []
            stamps = None
            async with s.post(url, json={**body, "stream": True}, headers=headers) as r:
                assert r.status == 200, await r.text()
                async for line in r.content:
                    if line.startswith(b"data:"):
                        seen.append(time.monotonic())
                        if stamps is None and b'"bench"' in line:
                            stamps = json.loads(line[5:])["bench"]
            if i < 3 or not seen:
                continue  # warm-up
            firsts.append((seen[0] - t0) * 1000)
            gaps.extend((b - a) * 1000 for a, b in zip(seen[1:-3], seen[2:-2]))  # the content events
            if stamps is not None:
                there.append((stamps[0] - t0) * 1000)
                back.append((seen[0] - stamps[1]) * 1000)
    return {"first_p50": statistics.median(firsts), "first_p90": sorted(firsts)[int(len(firsts) * 0.9) - 1],
            "gap_p50": statistics.median(gaps), "gap_max": max(gaps),
            "there_p50": statistics.median(there) if there else float("nan"),
            "back_p50": statistics.median(back) if back else float("nan")}


# --- the run ------------------------------------------------------------------------------------


def setup_synapse(data: Path, up: int) -> str:
    env_before = os.environ.get("SYNAPSE_DATA_DIR")
    os.environ["SYNAPSE_DATA_DIR"] = str(data)
    from synapse import settings as settings_mod
    from synapse.gateway import keys

    settings_mod.update({
        "openai_key": "sk-bench-upstream-000000", "openai_base_url": f"http://127.0.0.1:{up}/v1",
        "anthropic_key": "sk-ant-bench-upstream-0000", "anthropic_base_url": f"http://127.0.0.1:{up}",
        "max_retries": 0,
    })
    key, _ = keys.create("bench", settings=settings_mod.load())
    from synapse import storage

    storage.dispose_all()
    if env_before is None:
        os.environ.pop("SYNAPSE_DATA_DIR", None)
    return key


def start_synapse(data: Path, port: int, cpu: str | None, workers: int = 1, tree: Path | None = None,
                  ) -> tuple[subprocess.Popen[bytes], float]:
    """`synapse serve` from this checkout, or from the source tree `tree` (the baseline).

    Run from the tree's own folder: `python -m` puts the working directory first on
    sys.path, ahead of PYTHONPATH, so a baseline started from this checkout ran this
    checkout's code (every --baseline ratio before 2026-11-25 17:20 compared a tree with itself)."""
    env = {"SYNAPSE_DATA_DIR": str(data)}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    t0 = time.perf_counter()
    proc = spawn([PY, "-m", "synapse.cli", "serve", "--port", str(port), "--workers", str(workers)], cpu,
                 env, data / f"serve-{port}.log", cwd=tree or ROOT)
    return proc, t0


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and every process below it (`--workers` children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_seconds(p)
        except OSError:
            continue
        todo.extend(children.get(p, []))
    return total


def first_answer(url: str, body: dict[str, Any], headers: dict[str, str], t0: float, timeout: float = 30) -> float:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={**headers, "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.005)
    raise RuntimeError("no answer")


def litellm_proxy(up: int, port: int, venv: Path = LITELLM_VENV, scratch: Path | None = None
                  ) -> subprocess.Popen[bytes] | None:
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        print(f"making the LiteLLM venv ({venv}) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    config = (scratch or venv) / "bench-config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        "    litellm_params:\n"
        "      model: openai/gpt-bench\n"
        f"      api_base: http://127.0.0.1:{up}/v1\n"
        "      api_key: sk-bench-upstream-000000\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    env = {"LITELLM_LOG": "ERROR", "DISABLE_SCHEMA_UPDATE": "true", "LITELLM_TELEMETRY": "False",
           "LITELLM_MASTER_KEY": LITELLM_KEY}
    return spawn([str(exe), "--config", str(config), "--port", str(port), "--num_workers", "1"], "0", env,
                 (scratch or venv) / "proxy.log")


def row(label: str, r: dict[str, Any]) -> None:
    extra = f"  non-2xx {r['non2xx']}" if r["non2xx"] else ""
    if "cpu_us" in r:
        extra += f"   CPU {r['cpu_us']:6.0f} us/req (one free core: {1e6 / max(r['cpu_us'], 1):,.0f} req/s)"
    if len(r.get("rounds", ())) > 1:
        extra += f"  rounds {r['rounds']}"
    print(f"  {label:<48} {r['rps']:>8,.0f} req/s   p50 {r['p50']:7.3f} ms   p99 {r['p99']:7.3f} ms{extra}", flush=True)


SHAPES = (
    ("OpenAI shape -> OpenAI (relay)", "/v1/chat/completions", OPENAI_REQUEST, {}),
    ("Anthropic shape -> Anthropic (relay)", "/v1/messages", ANTHROPIC_REQUEST, {"anthropic-version": "2023-06-01"}),
    ("OpenAI shape -> Anthropic (canonical)", "/v1/chat/completions", {**OPENAI_REQUEST, "model": "claude-sonnet-4-5"}, {}),
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--first-byte-ms", type=float, default=50)
    ap.add_argument("--event-ms", type=float, default=10)
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--only", default="", help="comma list: direct,passthrough,synapse,stream,start,memory,workers,litellm")
    ap.add_argument("--baseline", type=Path, default=None, help="a source tree to measure beside this one")
    ap.add_argument("--rounds", type=int, default=1, help="alternate the servers this many times (medians)")
    ap.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    want = lambda name: not only or name in only  # noqa: E731
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    import multiprocessing

    up = free_port()
    up_proc = multiprocessing.Process(target=upstream, args=(up, args.first_byte_ms, args.event_ms), daemon=True)
    up_proc.start()
    os.sched_setaffinity(up_proc.pid, {1})
    os.sched_setaffinity(0, {1})
    wait_port(up)
    tmp = Path(tempfile.mkdtemp(prefix="synapse-bench-"))
    data = tmp / "data"
    key = setup_synapse(data, up)
    auth = {"Authorization": f"Bearer {key}"}
    secs = args.seconds
    procs: list[subprocess.Popen[bytes]] = []
    trees: list[tuple[str, Path | None]] = [("synapse", None)]
    if args.baseline is not None:
        trees.insert(0, ("baseline", args.baseline.resolve()))
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; gateway on CPU 0, upstream + wrk on CPU 1; "
              f"load average {os.getloadavg()[0]:.1f}; {args.rounds} round(s)")
        direct = f"http://127.0.0.1:{up}/v1/chat/completions"
        results: dict[str, Any] = {}
        if want("direct"):
            results["direct64"] = wrk(direct, OPENAI_REQUEST, {}, 64, secs)
            row("upstream direct, c=64", results["direct64"])
            results["direct1"] = wrk(direct, OPENAI_REQUEST, {}, 1, secs)
            row("upstream direct, c=1", results["direct1"])
        # every server under test at once (an idle one costs nothing), measured in turn
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        if want("passthrough"):
            pt = free_port()
            p = spawn([PY, __file__, "--passthrough", str(pt), str(up)], "0")
            procs.append(p)
            wait_port(pt)
            servers["bare pass-through"] = (p, f"http://127.0.0.1:{pt}")
        for name, tree in trees:
            port = free_port()
            syn, t0 = start_synapse(data, port, "0", tree=tree)
            procs.append(syn)
            gw = f"http://127.0.0.1:{port}"
            results[f"start {name}"] = first_answer(gw + "/v1/chat/completions", OPENAI_REQUEST, auth, t0)
            servers[name] = (syn, gw)
            print(f"  {name} serve: start to first /v1 answer {results[f'start {name}'] * 1000:.0f} ms")
        time.sleep(3)  # the warm-up thread finishes
        rows: list[tuple[str, str, str, dict[str, Any], dict[str, str], int]] = []
        for c in (64, 1):
            if "bare pass-through" in servers:
                rows.append((f"bare pass-through, c={c}", "bare pass-through", "/v1/chat/completions", OPENAI_REQUEST, {}, c))
            if want("synapse"):
                for label, path, body, hdrs in SHAPES:
                    for name, _ in trees:
                        rows.append((f"{name} {label}, c={c}", name, path, body, {**auth, **hdrs}, c))
        for _, name, path, body, hdrs, c in rows[: len(trees) + 1]:  # warm every server up
            wrk(servers[name][1] + path, body, hdrs, 64, 2)
        runs: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.rounds):
            for label, name, path, body, hdrs, c in rows:
                proc, base = servers[name]
                r = measured(proc.pid, lambda: wrk(base + path, body, hdrs, c, secs))  # noqa: B023
                runs.setdefault(label, []).append(r)
        for label, *_ in rows:
            results[label] = median_of(runs[label])
            row(label, results[label])
        if args.baseline is not None and want("synapse"):
            print("  ratios this tree / baseline (median of the rounds' paired ratios, each pair measured back to back; "
                  "CPU/req range in brackets):")
            for c in (64, 1):
                for label, *_ in SHAPES:
                    new, old = runs[f"synapse {label}, c={c}"], runs[f"baseline {label}, c={c}"]
                    cpu = sorted(n["cpu_us"] / o["cpu_us"] for n, o in zip(new, old))
                    rps = statistics.median(n["rps"] / o["rps"] for n, o in zip(new, old))
                    p50 = statistics.median(n["p50"] / o["p50"] for n, o in zip(new, old))
                    print(f"    {label}, c={c}: CPU/req {statistics.median(cpu):.2f}x [{cpu[0]:.2f}-{cpu[-1]:.2f}], "
                          f"req/s {rps:.2f}x, p50 {p50:.2f}x")
        if "bare pass-through" in servers:
            stop(servers.pop("bare pass-through")[0])
        if want("stream"):
            stream_rows: list[tuple[str, str, dict[str, str]]] = [("direct", direct, {})]
            stream_rows += [(name, servers[name][1] + "/v1/chat/completions", auth) for name, _ in trees]
            timings: dict[str, list[dict[str, float]]] = {}
            for _ in range(max(1, args.rounds)):
                for name, url, hdrs in stream_rows:
                    timings.setdefault(name, []).append(asyncio.run(stream_timings(url, OPENAI_REQUEST, hdrs, 40)))
            med = {name: {k: statistics.median(t[k] for t in ts) for k in ts[0]} for name, ts in timings.items()}
            for name, t in med.items():
                print(f"  stream {name:<40} first event p50 {t['first_p50']:.2f} ms p90 {t['first_p90']:.2f} ms "
                      f"(to the upstream {t['there_p50']:.3f} ms, back {t['back_p50']:.3f} ms); "
                      f"gaps p50 {t['gap_p50']:.2f} ms max {t['gap_max']:.2f} ms (upstream: every {args.event_ms:g} ms)")
            for name, _ in trees:
                ways = (med[name]["there_p50"] + med[name]["back_p50"]) - (med["direct"]["there_p50"] + med["direct"]["back_p50"])
                print(f"  first event added by {name}: p50 {med[name]['first_p50'] - med['direct']['first_p50']:.2f} ms, "
                      f"p90 {med[name]['first_p90'] - med['direct']['first_p90']:.2f} ms; "
                      f"on the way there and back (medians) {ways:.3f} ms")
        if want("memory"):
            syn, gw = servers["synapse"]
            done = sum(r.get("requests", 0) for k, r in results.items() if isinstance(r, dict) and k.startswith("synapse"))
            marks: list[tuple[int, float]] = [(done, rss_mib(syn.pid))]
            while done < 100_000 or len(marks) < 5:  # at least four marks after the rows above
                r = wrk(gw + "/v1/chat/completions", OPENAI_REQUEST, auth, 64, 5)
                done += r["requests"]
                marks.append((done, rss_mib(syn.pid)))
            print("  RSS by requests served: " + ", ".join(f"{n:,}: {m:.0f} MiB" for n, m in marks))
        for proc, _ in servers.values():
            stop(proc)
            procs.remove(proc)
        if want("start"):
            for _ in range(max(3, args.rounds)):
                for name, tree in trees:
                    port = free_port()
                    p, t0 = start_synapse(data, port, None, tree=tree)
                    procs.append(p)
                    results.setdefault(f"starts {name}", []).append(
                        first_answer(f"http://127.0.0.1:{port}/v1/chat/completions", OPENAI_REQUEST, auth, t0))
                    stop(p)
                    procs.remove(p)
            for name, _ in trees:
                starts = results[f"starts {name}"]
                print(f"  {name}: start to first /v1 answer, median {statistics.median(starts) * 1000:.0f} ms "
                      f"(min {min(starts) * 1000:.0f}, max {max(starts) * 1000:.0f}; unpinned)")
        if want("workers"):
            # Unpinned: the workers, wrk and the upstream share both cores. CPU per request
            # (all worker processes) says what each worker costs whatever the machine does.
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
            for _ in range(max(1, args.rounds)):
                for w in (1, 2):
                    port = free_port()
                    p, t0 = start_synapse(data, port, None, w)
                    procs.append(p)
                    first_answer(f"http://127.0.0.1:{port}/v1/chat/completions", OPENAI_REQUEST, auth, t0)
                    time.sleep(3)
                    wrk(f"http://127.0.0.1:{port}/v1/chat/completions", OPENAI_REQUEST, auth, 64, 2, cpu="")
                    r = measured(p.pid, lambda: wrk(f"http://127.0.0.1:{port}/v1/chat/completions", OPENAI_REQUEST,  # noqa: B023
                                                    auth, 64, secs, cpu=""), tree_cpu_seconds)
                    runs.setdefault(f"workers {w}", []).append(r)
                    stop(p)
                    procs.remove(p)
            for w in (1, 2):
                row(f"synapse --workers {w} (unpinned), c=64", median_of(runs[f"workers {w}"]))
        if want("litellm") and not args.no_litellm:
            port = free_port()
            p = litellm_proxy(up, port, args.litellm_venv, tmp)
            if p is not None:
                procs.append(p)
                wait_port(port, 180, p)
                lurl = f"http://127.0.0.1:{port}/v1/chat/completions"
                lauth = {"Authorization": f"Bearer {LITELLM_KEY}"}
                first_answer(lurl, OPENAI_REQUEST, lauth, time.perf_counter(), 120)
                wrk(lurl, OPENAI_REQUEST, lauth, 64, 2)
                for c in (64, 1):
                    row(f"LiteLLM proxy, c={c}", measured(p.pid, lambda: wrk(lurl, OPENAI_REQUEST, lauth, c, secs)))  # noqa: B023
                stop(p)
                procs.remove(p)
        print(f"  load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        for p in procs:
            stop(p)
        up_proc.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--passthrough":
        passthrough(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
