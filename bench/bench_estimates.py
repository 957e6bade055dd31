"""What estimating the usage of calls cut short costs (usage/estimate.py).

On the success path, the relay keeps the first SAMPLE_BYTES of a stream it passes on
(client._relay_chunks, a local list), then runs its plain loop; the library stream
gains one attribute set per call (`req.streamed_so_far`, the adapter's own state). This
measures the relay's per-chunk work (feed, plus keep while the sample fills) on a whole
stream against the loop before the change, in the same run, and what the cut-short path
itself costs (counting the prompt, decoding the sample): paid only by a call that ends
early.

    .venv/bin/python bench/bench_estimates.py [chunks]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synapse.providers.relay import SAMPLE_BYTES, AnthropicStreamReader, OpenAIStreamReader  # noqa: E402


def sse(obj: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def openai_stream(n: int) -> list[bytes]:
    base = {"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion.chunk", "created": 1741570283,
            "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_eb9dce56a8"}
    chunks = [sse({**base, "choices": [{"index": 0, "delta": {"content": " tok"}, "logprobs": None,
                                         "finish_reason": None}]}) for _ in range(n)]
    chunks.append(sse({**base, "choices": [], "usage": {"prompt_tokens": 900, "completion_tokens": n,
                                                        "total_tokens": 900 + n}}))
    return chunks + [b"data: [DONE]\n\n"]


def anthropic_stream(n: int) -> list[bytes]:
    start = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                   "model": "claude-sonnet-4-5", "content": [],
                                                   "usage": {"input_tokens": 900, "output_tokens": 1}}}
    chunks = [sse(start, "message_start"),
              sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                  "content_block_start")]
    chunks += [sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " tok"}},
                   "content_block_delta") for _ in range(n)]
    chunks += [sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
               sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": n}},
                   "message_delta"),
               sse({"type": "message_stop"}, "message_stop")]
    return chunks


def loop_before(reader: Any, chunks: list[bytes], out: list[bytes]) -> None:
    """The relay loop before the sample (client._relay_chunks without `keep`)."""
    for chunk in chunks:
        data = reader.feed(chunk)
        if data:
            out.append(data)


def loop_now(reader: Any, chunks: list[bytes], out: list[bytes]) -> list[bytes]:
    """The relay loop now: the first SAMPLE_BYTES kept in a local list, then the plain loop."""
    sample: list[bytes] = []
    kept = 0
    it = iter(chunks)
    for chunk in it:
        data = reader.feed(chunk)
        if data:
            sample.append(data)
            kept += len(data)
            out.append(data)
            if kept >= SAMPLE_BYTES:
                break
    for chunk in it:
        data = reader.feed(chunk)
        if data:
            out.append(data)
    return sample


def per_chunk_ns(loop: Any, cls: type, chunks: list[bytes], rounds: int = 20) -> float:
    """The least time, over `rounds`, to relay a whole stream through a new reader, per chunk
    (the least is what the code costs; anything above it is the machine's other load)."""
    times = []
    for _ in range(rounds):
        reader, sink = cls(), []
        t0 = time.perf_counter_ns()
        loop(reader, chunks, sink)
        reader.close()
        times.append(time.perf_counter_ns() - t0)
    return min(times) / len(chunks)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(f"relay loop per chunk, {n}-chunk streams: the least of 20 streams, 7 rounds interleaved; median of rounds")
    for name, make, cls in (("openai", openai_stream, OpenAIStreamReader),
                            ("anthropic", anthropic_stream, AnthropicStreamReader)):
        chunks = make(n)
        now, before = [], []
        for _ in range(7):  # interleaved, so load on the machine hits both alike
            before.append(per_chunk_ns(loop_before, cls, chunks))
            now.append(per_chunk_ns(loop_now, cls, chunks))
        b, a = statistics.median(before), statistics.median(now)
        print(f"  {name:<9} before {b:7.0f} ns/chunk   with the sample {a:7.0f} ns/chunk   ratio {a / b:.3f}")

    # the cut-short path: paid only by a call that ends early
    from synapse.caching import prompt_chars, wire_prompt_chars
    from synapse.coerce import build_request
    from synapse.providers import adapter_for
    from synapse.providers.catalog import get

    req = build_request("gpt-4o", [{"role": "user", "content": "word " * 2000}], system="You are helpful. " * 50)
    body = {"model": "gpt-4o", "messages": [{"role": "system", "content": "You are helpful. " * 50},
                                             {"role": "user", "content": "word " * 2000}]}
    adapter = adapter_for(get("openai"), {"openai_key": "sk-bench"})
    reader = OpenAIStreamReader()
    stream = openai_stream(n)[:-2]
    sample = loop_now(reader, stream, [])
    received = sum(map(len, stream))

    def best(fn: Any, k: int = 50) -> float:
        out = []
        for _ in range(k):
            t0 = time.perf_counter_ns()
            fn()
            out.append(time.perf_counter_ns() - t0)
        return min(out) / 1000

    print("cut-short path (once per call that ends early), best of 50:")
    print(f"  prompt_chars of a 10 KB request      {best(lambda: prompt_chars(req.messages, req.system, req.tools)):8.1f} µs")
    print(f"  wire_prompt_chars of the same body   {best(lambda: wire_prompt_chars(body)):8.1f} µs")
    print(f"  relay sample decoded ({sum(map(len, sample)) // 1024} KiB kept of {received // 1024} KiB) "
          f"{best(lambda: reader.streamed(adapter, sample, received)):8.1f} µs")


if __name__ == "__main__":
    main()
