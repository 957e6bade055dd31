"""Reading usage off a same-protocol relay's bytes, without decoding every chunk.

The gateway passes an OpenAI-shaped request to an OpenAI-protocol provider (and an
Anthropic-shaped one to Anthropic) as is; the reply goes back as the provider sent it.
These readers sit on the way: they pass complete SSE lines on at once, and decode only
the few lines that carry usage, an error or the end of the stream, which they find with
a byte search. Usage is normalised with the adapters' own functions (reference §1.1).

For a stream cut short before its usage arrived (usage/estimate.py), the relay keeps the
first `SAMPLE_BYTES` it passed on; a reader's `streamed()` decodes that sample with the
adapter's own decoder and scales its text to every byte received, only then. Past the
sample the relay loop does nothing more per chunk than it did before.
"""

from __future__ import annotations

import re
from typing import Any

from ..types import Usage
from .transport import loads

__all__ = ["AnthropicStreamReader", "OpenAIStreamReader", "StreamReader", "body_usage"]

#: How much of a relayed stream a reader keeps to estimate its output if it is cut short.
SAMPLE_BYTES = 32 * 1024

_OPENAI_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_ERROR_KEY = re.compile(rb'"error"\s*:')


def body_usage(protocol: str, body: bytes) -> Usage:
    """The usage of a non-streaming reply body (an empty Usage if it has none)."""
    try:
        data = loads(body)
    except ValueError:
        return Usage()
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return Usage()
    if protocol == "anthropic":
        from .anthropic import map_usage

        return map_usage(usage)
    from .openai import normalise_usage

    return normalise_usage(usage)


class StreamReader:
    """Passes an SSE body on line by line and remembers usage, errors and the end."""

    __slots__ = ("_tail", "error", "done")

    def __init__(self) -> None:
        self._tail = b""
        #: The decoded body of an in-stream error event, if one passed.
        self.error: dict[str, Any] | None = None
        #: The stream's own end marker passed (`[DONE]`, `message_stop`).
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to send on now: every complete line so far (a partial last line waits)."""
        data = self._tail + chunk if self._tail else chunk
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:]
        out = data[:cut]
        if out and self._interesting(out):
            out = self._scan(out)
        return out

    def streamed(self, adapter: Any, sample: list[bytes], received: int = 0) -> tuple[int, int]:
        """(output characters, the reasoning part) a stream passed on: text, tool-call
        arguments and reasoning, decoded from the `sample` of its first bytes and scaled to
        the `received` bytes of the whole. For the cut-short path only (usage/estimate.py)."""
        out = reasoning = 0
        kept = sum(map(len, sample))
        lines = b"".join(sample).split(b"\n")
        objs = []
        for line in lines:
            if line.startswith(b"data:"):
                try:
                    obj = loads(line[5:])
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    objs.append(obj)
        if objs:
            out, reasoning = self._count(objs, adapter)
        if kept and received > kept:
            scale = received / kept
            out, reasoning = round(out * scale), round(reasoning * scale)
        return out, reasoning

    def _count(self, objs: list[dict[str, Any]], adapter: Any) -> tuple[int, int]:
        raise NotImplementedError

    def close(self) -> bytes:
        """What is left when the upstream ends (a last line without a newline)."""
        rest, self._tail = self._tail, b""
        if rest and self._interesting(rest):
            rest = self._scan(rest)
        return rest

    def usage(self) -> Usage:
        raise NotImplementedError

    def usage_so_far(self) -> Usage:
        """The usage the provider had reported when a stream stopped early."""
        return self.usage()

    def _interesting(self, data: bytes) -> bool:
        raise NotImplementedError

    def _scan(self, data: bytes) -> bytes:
        raise NotImplementedError


class OpenAIStreamReader(StreamReader):
    """Chat Completions: usage is the chunk whose `usage` is an object (§3.4).

    With `hide_usage`, the gateway asked for `stream_options.include_usage` on the
    caller's behalf, so the usage-only chunk (`choices: []`) is not passed on.
    """

    __slots__ = ("_usage", "_hide")

    def __init__(self, hide_usage: bool = False) -> None:
        super().__init__()
        self._usage: dict[str, Any] | None = None
        self._hide = hide_usage

    def usage(self) -> Usage:
        from .openai import normalise_usage

        return normalise_usage(self._usage)

    def _count(self, objs: list[dict[str, Any]], adapter: Any) -> tuple[int, int]:
        from .openai import _Accumulator

        acc = _Accumulator()
        for obj in objs:
            try:
                for _ in acc.feed(obj):
                    pass
            except Exception:  # a chunk the decoder refuses: the rest still counts
                continue
        return acc.streamed()

    def _interesting(self, data: bytes) -> bool:
        return b"[DONE]" in data or _OPENAI_USAGE.search(data) is not None or _ERROR_KEY.search(data) is not None

    def _scan(self, data: bytes) -> bytes:
        lines = data.split(b"\n")
        keep: list[bytes] = []
        skip_blank = False
        for line in lines:
            if skip_blank and not line.strip():
                skip_blank = False
                continue
            skip_blank = False
            if line.startswith(b"data:"):
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    self.done = True
                elif _OPENAI_USAGE.search(payload) or _ERROR_KEY.search(payload):
                    try:
                        obj = loads(payload)
                    except ValueError:
                        obj = None
                    if isinstance(obj, dict):
                        if isinstance(obj.get("usage"), dict):
                            self._usage = obj["usage"]
                            if self._hide and not obj.get("choices"):
                                skip_blank = True
                                continue
                        if obj.get("error"):
                            self.error = obj
            keep.append(line)
        return b"\n".join(keep)


class AnthropicStreamReader(StreamReader):
    """Messages: usage starts in `message_start` and `message_delta` overwrites what it carries (§2.4)."""

    __slots__ = ("_usage", "_final")

    def __init__(self) -> None:
        super().__init__()
        self._usage: dict[str, Any] = {}
        self._final = False  # a message_delta (with the real output count) passed

    def usage(self) -> Usage:
        from .anthropic import map_usage

        return map_usage(self._usage)

    def usage_so_far(self) -> Usage:
        """What Anthropic had reported when the stream stopped: the input from `message_start`;
        its output count is a placeholder until `message_delta` carries the real one."""
        from .anthropic import map_usage

        return map_usage(self._usage if self._final else {**self._usage, "output_tokens": 0})

    def _count(self, objs: list[dict[str, Any]], adapter: Any) -> tuple[int, int]:
        from .anthropic import _StreamState, state_chars

        st = _StreamState()
        for obj in objs:
            try:
                adapter._on_event(st, obj, {})
            except Exception:  # an event the decoder refuses: the rest still counts
                continue
        return state_chars(st)

    def _interesting(self, data: bytes) -> bool:
        return b"message_" in data or b"error" in data

    def _scan(self, data: bytes) -> bytes:
        for line in data.split(b"\n"):
            if not line.startswith(b"data:") or not (b"message_" in line or b"error" in line):
                continue
            try:
                obj = loads(line[5:])
            except ValueError:
                continue
            if not isinstance(obj, dict):
                continue
            kind = obj.get("type")
            if kind == "message_start":
                usage = (obj.get("message") or {}).get("usage")
                if isinstance(usage, dict):
                    self._usage = dict(usage)
            elif kind == "message_delta":
                usage = obj.get("usage")
                if isinstance(usage, dict):
                    self._usage.update((k, v) for k, v in usage.items() if v is not None)
                    self._final = True
            elif kind == "message_stop":
                self.done = True
            elif kind == "error":
                self.error = obj
        return data
