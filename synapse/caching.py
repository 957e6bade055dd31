"""Prompt-cache planning (on by default) and the opt-in response cache.

Prompt cache
------------
Anthropic and Bedrock cache a prompt prefix only up to explicit breakpoints
(`cache=True` on a part or tool; the adapters send `cache_control` / `cachePoint`).
`plan_prompt_cache` places them on the stable prefix of every call:

* the system prompt up to the volatile separator `SYNAPSE_VOLATILE`. A caller puts
  the marker in a system prompt; the text before it is stable (cached), the text
  after it (the current time, retrieved memories...) changes each turn and is sent
  as its own part after the breakpoint. The marker itself is never sent;
* the last tool definition;
* the conversation history, incrementally: the last block of the newest user turn
  (so the next turn reads what this one wrote) and the last block of the previous
  user turn (the breakpoint the previous call wrote, so this call reads it).

At most `MAX_BREAKPOINTS` (4) in all; breakpoints a caller set explicitly are kept and
counted first. A breakpoint whose prefix is shorter than the model's minimum
(`min_cache_tokens`, estimated at `CHARS_PER_TOKEN` characters a token) is skipped:
below it the provider caches nothing.

OpenAI, xAI, DeepSeek and Gemini cache prefixes by themselves; for them the planner
only splits the system prompt at the separator, so nothing volatile sits before it.
Tools keep the caller's order, so the prefix stays byte-stable between calls.

The planner never mutates the caller's objects: it replaces a part with a copy in the
call's own lists (which `client.build_request` made fresh).

Response cache
--------------
Off by default; enabled per call (`achat(..., cache="exact" | "semantic")`) or per
agent (`CallContext(cache=...)`). Entries live `response_cache_ttl` seconds (default
`DEFAULT_TTL`, one hour) in `<data dir>/cache/responses.sqlite3`, or in Redis when
`redis_url` is set (scale mode: every instance shares it; synapse/scale/response_cache.py).

* exact: the key is a SHA-256 of the routed model and the canonical request.
* semantic: additionally, a request whose last user message embeds (with the
  default embedding model: `embedding_model`, else the `mode`'s) within cosine
  similarity `SEMANTIC_THRESHOLD` (0.95; setting `response_cache_similarity`) of a
  stored one is a hit, provided everything else (model, system prompt, tools,
  options and the earlier history) is identical.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from .types import (
    ImagePart,
    Message,
    ReasoningPart,
    Request,
    Response,
    ServerToolPart,
    Source,
    TextPart,
    Tool,
    ToolCall,
    ToolResultPart,
    Usage,
)

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_MIN_CACHE_TOKENS",
    "DEFAULT_TTL",
    "most_similar",
    "MAX_BREAKPOINTS",
    "MIN_CACHE_TOKENS",
    "SEMANTIC_THRESHOLD",
    "SYNAPSE_VOLATILE",
    "ResponseCache",
    "cache_mode",
    "min_cache_tokens",
    "plan_anthropic_body",
    "plan_prompt_cache",
    "prompt_chars",
    "response_cache",
    "split_volatile",
    "tokens_for_chars",
    "wire_prompt_chars",
]

#: Put this in a system prompt: what comes before it is cached, what comes after it is not.
SYNAPSE_VOLATILE = "<!-- synapse:volatile -->"

#: Anthropic and Bedrock (Claude) accept at most four cache breakpoints a request.
MAX_BREAKPOINTS = 4

#: The planner's token estimate: about four characters a token.
CHARS_PER_TOKEN = 4

#: The minimum cacheable prefix when a model is not in `MIN_CACHE_TOKENS`.
DEFAULT_MIN_CACHE_TOKENS = 1024

#: Minimum cacheable prefix in tokens, by a substring of the model id (first match
#: wins); from Anthropic's prompt-caching documentation (the Bedrock ids contain the
#: same names). Below it a request works but nothing is cached.
MIN_CACHE_TOKENS: tuple[tuple[str, int], ...] = (
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
    ("claude-haiku-3", 2048),
    ("amazon.nova", 1024),
)

#: Tokens an image is counted as in the prefix estimate (Anthropic: ~1,600 at most).
IMAGE_TOKENS = 1600

#: Cosine similarity at or above which a semantic response-cache entry is a hit.
SEMANTIC_THRESHOLD = 0.95

#: Response-cache time to live, seconds.
DEFAULT_TTL = 3600.0

_PLANNED_PROTOCOLS = frozenset({"anthropic", "bedrock"})
_EPHEMERAL: dict[str, str] = {"type": "ephemeral"}


# --- prompt cache planner ------------------------------------------------------------


def min_cache_tokens(model: str) -> int:
    """The minimum prefix (tokens) the provider caches for `model`."""
    name = model.lower()
    for needle, tokens in MIN_CACHE_TOKENS:
        if needle in name:
            return tokens
    return DEFAULT_MIN_CACHE_TOKENS


def _supports_breakpoints(protocol: str, model: str) -> tuple[bool, bool]:
    """(breakpoints supported, tool breakpoints supported) for this protocol and model."""
    if protocol == "anthropic":
        return True, True
    if protocol == "bedrock":
        name = model.lower()
        if "claude" in name:
            return True, True
        if "amazon.nova" in name:  # Nova caches system and messages, not tools
            return True, False
    return False, False


def split_volatile(system: list[TextPart]) -> tuple[list[TextPart], int]:
    """Split the system prompt at `SYNAPSE_VOLATILE`.

    Returns the new list of parts and the number of stable parts at its head (all of
    them when there is no marker). The marker is removed wherever it appears.
    """
    for i, part in enumerate(system):
        if SYNAPSE_VOLATILE not in part.text:
            continue
        before, _, after = part.text.partition(SYNAPSE_VOLATILE)
        before, after = before.rstrip(), after.replace(SYNAPSE_VOLATILE, "").lstrip()
        out = list(system[:i])
        if before:
            out.append(TextPart(before, cache=part.cache))
        stable = len(out)
        if after:
            out.append(TextPart(after))
        for rest in system[i + 1:]:
            if SYNAPSE_VOLATILE in rest.text:
                rest = dataclasses.replace(rest, text=rest.text.replace(SYNAPSE_VOLATILE, ""))
            out.append(rest)
        return out, stable
    return system, len(system)


def _part_chars(part: Any) -> int:
    if isinstance(part, TextPart):
        return len(part.text)
    if isinstance(part, ToolResultPart):
        return len(part.content) + 16
    if isinstance(part, ToolCall):
        return len(part.name) + len(orjson.dumps(part.arguments)) + 16
    if isinstance(part, ImagePart):
        return IMAGE_TOKENS * CHARS_PER_TOKEN
    return 0


def _tool_chars(tool: Tool) -> int:
    return len(tool.name) + len(tool.description) + len(orjson.dumps(tool.parameters))


def _any_part_chars(part: Any) -> int:
    """`_part_chars`, and a part type it does not know (reasoning, provider-side tool
    blocks, one added later) as the length of its JSON: it is sent back, so it counts."""
    if isinstance(part, (TextPart, ToolResultPart, ToolCall, ImagePart)):
        return _part_chars(part)
    return len(orjson.dumps(dataclasses.asdict(part), default=str))


def prompt_chars(messages: Sequence[Message], system: Sequence[TextPart] = (), tools: Sequence[Tool] = ()) -> int:
    """The characters of a prompt as every estimate counts them (images as IMAGE_TOKENS):
    the cost limit's prompt price, the agents' context budget, and the input of a call
    cut short before the provider reported its usage (usage/estimate.py)."""
    chars = sum(len(p.text) for p in system) + sum(_tool_chars(t) for t in tools)
    return chars + sum(_any_part_chars(p) for m in messages for p in m.content)


def tokens_for_chars(chars: int) -> int:
    """`chars` as tokens, at CHARS_PER_TOKEN, rounded up (any text is at least a token)."""
    return -(-max(0, chars) // CHARS_PER_TOKEN)


def plan_prompt_cache(req: Request, protocol: str, breakpoints: bool = True) -> Request:
    """Place prompt-cache breakpoints on `req` (in place, on its own lists) and return it.

    The system prompt is always split at `SYNAPSE_VOLATILE` (the marker is never sent);
    breakpoints are added only when `breakpoints` (the `prompt_cache_enabled` setting)
    is true and the protocol takes them.
    """
    if any(SYNAPSE_VOLATILE in p.text for p in req.system):
        req.system, stable = split_volatile(req.system)
    else:
        stable = len(req.system)
    supported, tools_ok = _supports_breakpoints(protocol, req.model)
    if not (breakpoints and supported):
        return req

    # One pass, in the order the provider reads the prompt (tools -> system -> messages):
    # explicit marks, and the prefix size (characters) at every place a breakpoint can go.
    explicit = 0
    tools_chars = 0
    for t in req.tools:
        explicit += t.cache
        tools_chars += _tool_chars(t)
    total = tools_chars
    system_chars = [0] * len(req.system)
    for i, sp in enumerate(req.system):
        explicit += sp.cache
        total += len(sp.text)
        system_chars[i] = total
    newest = previous = None
    message_chars: dict[int, int] = {}
    for i, m in enumerate(req.messages):
        for p in m.content:
            explicit += p.cache
            total += _part_chars(p)
        message_chars[i] = total
        if m.role == "user" and m.content:
            newest, previous = i, newest
    budget = MAX_BREAKPOINTS - explicit
    if budget <= 0:
        return req
    min_chars = min_cache_tokens(req.model) * CHARS_PER_TOKEN

    # Candidates in priority order: (kind, index, prefix chars).
    # (already marked ones are left out: they are counted in `explicit`).
    candidates: list[tuple[str, int, int]] = []
    if stable and not req.system[stable - 1].cache:
        candidates.append(("system", stable - 1, system_chars[stable - 1]))
    for index in (newest, previous):
        if index is not None and not req.messages[index].content[-1].cache:
            candidates.append(("message", index, message_chars[index]))
    if req.tools and tools_ok and not req.tools[-1].cache:
        candidates.append(("tool", len(req.tools) - 1, tools_chars))

    for kind, index in _pick(candidates, budget, min_chars):
        if kind == "system":
            req.system = list(req.system)
            req.system[index] = dataclasses.replace(req.system[index], cache=True)
        elif kind == "tool":
            req.tools = list(req.tools)
            req.tools[index] = dataclasses.replace(req.tools[index], cache=True)
        else:
            msg = req.messages[index]
            last = msg.content[-1]
            content = list(msg.content)
            content[-1] = dataclasses.replace(last, cache=True)
            req.messages = list(req.messages)
            req.messages[index] = Message(msg.role, content)
    return req


def _pick(candidates: list[tuple[str, int, int]], budget: int, min_chars: int) -> list[tuple[str, int]]:
    """The candidates (kind, index, prefix chars), in priority order, that get a breakpoint:
    at most `budget`, none shorter than `min_chars`. Shared by both planners."""
    out: list[tuple[str, int]] = []
    for kind, index, chars in candidates:
        if len(out) >= budget:
            break
        if chars >= min_chars:
            out.append((kind, index))
    return out


# --- the same plan on an Anthropic wire body (the gateway's same-protocol relay) ----------


def _wire_chars(block: Any) -> int:
    if isinstance(block, str):
        return len(block)
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    if kind == "text":
        return len(str(block.get("text") or ""))
    if kind in ("image", "image_url"):  # Messages / Chat Completions: the estimate, not the base64
        return IMAGE_TOKENS * CHARS_PER_TOKEN
    return len(orjson.dumps(block, default=str))


def wire_prompt_chars(body: Mapping[str, Any]) -> int:
    """`prompt_chars` of a request in a wire shape (Chat Completions or Messages), as the
    gateway relays it: system, message content, tool calls and tool definitions."""
    chars = sum(_wire_chars(b) for b in _as_blocks(body.get("system")))
    for m in body.get("messages") or ():
        if isinstance(m, dict):
            chars += sum(_wire_chars(b) for b in _as_blocks(m.get("content")))
            calls = m.get("tool_calls")
            if calls:
                chars += len(orjson.dumps(calls, default=str))
    tools = body.get("tools")
    if tools:
        chars += len(orjson.dumps(tools, default=str))
    return chars


def _has_mark(block: Any) -> bool:
    return isinstance(block, dict) and "cache_control" in block


def _as_blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def plan_anthropic_body(body: dict[str, Any], breakpoints: bool = True) -> None:
    """`plan_prompt_cache` for a Messages API body the gateway relays as is (in place).

    The system prompt is split at `SYNAPSE_VOLATILE` (the marker is never sent). A body
    with a top-level `cache_control` (Anthropic's automatic caching) is left to it;
    breakpoints the caller put on blocks are kept and counted first; the rest go where
    the canonical planner puts them: end of the stable system prompt, the newest and the
    previous user turn, the last tool. Blocks are copied, never changed in place.
    """
    system: Any = body.get("system")
    stable_end: int | None = None
    if isinstance(system, str) and SYNAPSE_VOLATILE in system:
        system = _as_blocks(system)
    if isinstance(system, list):
        parts = [TextPart(str(b.get("text") or ""), cache=_has_mark(b)) if isinstance(b, dict) else TextPart("")
                 for b in system]
        if any(SYNAPSE_VOLATILE in p.text for p in parts):
            split, stable = split_volatile(parts)
            system = [{"type": "text", "text": p.text, **({"cache_control": _EPHEMERAL} if p.cache else {})}
                      for p in split]
            body["system"] = system
            stable_end = stable - 1 if stable else None
        else:
            stable_end = len(system) - 1 if system else None
    elif isinstance(system, str) and system:
        stable_end = 0
    if not breakpoints or "cache_control" in body:
        return
    tools: list[Any] = body["tools"] if isinstance(body.get("tools"), list) else []
    messages: list[Any] = body["messages"] if isinstance(body.get("messages"), list) else []
    explicit = sum(1 for t in tools if _has_mark(t))
    total = tools_chars = sum(_wire_chars(t) for t in tools)
    system_chars: list[int] = []
    for b in (system if isinstance(system, list) else [system] if system else []):
        explicit += _has_mark(b)
        total += _wire_chars(b.get("text") if isinstance(b, dict) else b)
        system_chars.append(total)
    newest: int | None = None
    previous: int | None = None
    message_chars: dict[int, int] = {}
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            continue
        for b in _as_blocks(m.get("content")):
            explicit += _has_mark(b)
            total += _wire_chars(b)
        message_chars[i] = total
        if m.get("role") == "user" and m.get("content"):
            newest, previous = i, newest
    budget = MAX_BREAKPOINTS - explicit
    if budget <= 0:
        return
    candidates: list[tuple[str, int, int]] = []
    if stable_end is not None and not _has_mark(_as_blocks(body["system"])[stable_end]):
        candidates.append(("system", stable_end, system_chars[stable_end]))
    for index in (newest, previous):
        if index is None:
            continue
        last = _as_blocks(messages[index]["content"])[-1:]
        if last and isinstance(last[0], dict) and not _has_mark(last[0]):
            candidates.append(("message", index, message_chars[index]))
    if tools and isinstance(tools[-1], dict) and not _has_mark(tools[-1]):
        candidates.append(("tool", len(tools) - 1, tools_chars))
    for kind, index in _pick(candidates, budget, min_cache_tokens(str(body["model"])) * CHARS_PER_TOKEN):
        if kind == "system":
            blocks = _as_blocks(body["system"])
            blocks[index] = {**blocks[index], "cache_control": _EPHEMERAL}
            body["system"] = blocks
        elif kind == "tool":
            body["tools"] = tools[:index] + [{**tools[index], "cache_control": _EPHEMERAL}]
        else:
            msg = messages[index]
            blocks = _as_blocks(msg["content"])
            blocks[-1] = {**blocks[-1], "cache_control": _EPHEMERAL}
            messages = body["messages"] = list(messages)
            messages[index] = {**msg, "content": blocks}


# --- response cache --------------------------------------------------------------------


def cache_mode(value: Any) -> str | None:
    """Normalise a `cache` option: None/False/"off" -> None; True/"exact" -> "exact"; "semantic"."""
    if value is None or value is False:
        return None
    if value is True:
        return "exact"
    text = str(value).strip().lower()
    if text in ("", "off", "false", "no", "none", "0"):
        return None
    if text in ("exact", "true", "on", "yes", "1"):
        return "exact"
    if text == "semantic":
        return "semantic"
    from .errors import BadRequestError

    raise BadRequestError(f"cache must be 'exact', 'semantic' or off, not {value!r}")


def _canon_part(p: Any) -> Any:
    if isinstance(p, TextPart):
        return ["t", p.text]
    if isinstance(p, ImagePart):
        digest = hashlib.sha256(p.data).hexdigest() if p.data is not None else None
        return ["i", p.media_type, digest, p.url]
    if isinstance(p, ToolCall):
        return ["c", p.id, p.name, p.arguments]
    if isinstance(p, ToolResultPart):
        return ["r", p.tool_call_id, p.content, p.name, p.is_error]
    return [repr(p)]


def _canon_common(model: str, req: Request) -> list[Any]:
    return [
        model,
        req.model,
        [p.text for p in req.system],
        [[t.name, t.description, t.parameters] for t in req.tools],
        [[t.name, t.options] for t in req.server_tools],
        req.tool_choice,
        req.max_tokens,
        req.temperature,
        req.stop,
        req.extra,
    ]


def _digest(obj: Any) -> str:
    import orjson

    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def exact_key(model: str, req: Request) -> str:
    """SHA-256 of the routed model and the canonical request (cache marks ignored)."""
    return _digest([_canon_common(model, req), [[m.role, [_canon_part(p) for p in m.content]] for m in req.messages]])


def semantic_query(req: Request) -> str | None:
    """The last user message's text when it is plain text (else no semantic matching)."""
    if not req.messages:
        return None
    last = req.messages[-1]
    if last.role != "user" or not all(isinstance(p, TextPart) for p in last.content):
        return None
    text = last.text.strip()
    return text or None


def semantic_scope(model: str, req: Request) -> str:
    """Everything but the last user message: a semantic hit needs all of it identical."""
    history = [[m.role, [_canon_part(p) for p in m.content]] for m in req.messages[:-1]]
    return _digest(["semantic", _canon_common(model, req), history])


def _dump_response(r: Response) -> bytes:
    import orjson

    return orjson.dumps(
        {
            "text": r.text,
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments, "provider_data": c.provider_data}
                           for c in r.tool_calls],
            "stop_reason": r.stop_reason,
            "raw_stop_reason": r.raw_stop_reason,
            "usage": r.usage.as_dict(),
            "provider": r.provider,
            "model": r.model,
            "reasoning": r.reasoning,
            "id": r.id,
            "reasoning_parts": [dataclasses.asdict(p) for p in r.reasoning_parts],
            "server_tools": [dataclasses.asdict(p) for p in r.server_tools],
            "citations": [dataclasses.asdict(c) for c in r.citations],
        }
    )


def _load_response(raw: bytes) -> Response:
    import orjson

    d = orjson.loads(raw)
    return Response(
        text=d["text"],
        tool_calls=[ToolCall(c["id"], c["name"], c["arguments"], provider_data=c.get("provider_data"))
                    for c in d["tool_calls"]],
        stop_reason=d["stop_reason"],
        usage=Usage(**d["usage"]),
        provider=d["provider"],
        model=d["model"],
        raw_stop_reason=d.get("raw_stop_reason"),
        reasoning=d.get("reasoning", ""),
        id=d.get("id"),
        reasoning_parts=[ReasoningPart(**p) for p in d.get("reasoning_parts") or ()],
        server_tools=[
            ServerToolPart(**{**p, "sources": [Source(**src) for src in p.get("sources") or ()]})
            for p in d.get("server_tools") or ()
        ],
        citations=[Source(**c) for c in d.get("citations") or ()],
    )


class ResponseCache:
    """Stored responses in one SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path, ttl: float = DEFAULT_TTL, threshold: float = SEMANTIC_THRESHOLD) -> None:
        import sqlite3

        self.path = path
        self.ttl = ttl
        self.threshold = threshold
        from .private_files import create_private

        create_private(path)  # 0600 in a 0700 folder: it holds reply text
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=10, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, scope TEXT, model TEXT, "
            "created REAL NOT NULL, expires REAL NOT NULL, vector BLOB, response BLOB NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS responses_scope ON responses (scope, expires)")
        self._last_purge = 0.0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _purge(self, now: float) -> None:
        if now - self._last_purge > 60:
            self._last_purge = now
            self._db.execute("DELETE FROM responses WHERE expires <= ?", (now,))

    def get(self, key: str) -> Response | None:
        now = time.time()
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ? AND expires > ?", (key, now)).fetchone()
        return _load_response(row[0]) if row else None

    def get_similar(self, scope: str, vector: list[float]) -> Response | None:
        """The stored response in `scope` most similar to `vector`, if it reaches the threshold."""
        now = time.time()
        with self._lock:
            rows = self._db.execute(
                "SELECT vector, response FROM responses WHERE scope = ? AND expires > ? AND vector IS NOT NULL",
                (scope, now),
            ).fetchall()
        best = most_similar([r[0] for r in rows], vector, self.threshold)
        return _load_response(rows[best][1]) if best is not None else None

    def put(self, key: str, model: str, response: Response, scope: str | None = None,
            vector: list[float] | None = None) -> None:
        blob = None
        if vector is not None:
            import numpy as np

            blob = np.asarray(vector, dtype=np.float32).tobytes()
        now = time.time()
        with self._lock:
            self._purge(now)
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, scope, model, created, expires, vector, response) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, scope, model, now, now + self.ttl, blob, _dump_response(response)),
            )

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM responses")

    # The call path's interface (a local file answers at once; scale mode's Redis cache awaits).

    async def aget(self, key: str) -> Response | None:
        return self.get(key)

    async def aget_similar(self, scope: str, vector: list[float]) -> Response | None:
        return self.get_similar(scope, vector)

    async def aput(self, key: str, model: str, response: Response, scope: str | None = None,
                   vector: list[float] | None = None) -> None:
        self.put(key, model, response, scope, vector)


def most_similar(vectors: list[bytes], vector: list[float], threshold: float) -> int | None:
    """Index of the stored float32 vector most similar to `vector` (cosine), if it reaches `threshold`."""
    import numpy as np

    q = np.asarray(vector, dtype=np.float32)
    q /= np.linalg.norm(q) or 1.0
    usable = [i for i, v in enumerate(vectors) if len(v) == q.nbytes]
    if not usable:
        return None
    matrix = np.stack([np.frombuffer(vectors[i], dtype=np.float32) for i in usable])
    norms = np.linalg.norm(matrix, axis=1)
    norms[norms == 0] = 1.0
    sims = (matrix @ q) / norms
    best = int(np.argmax(sims))
    return usable[best] if float(sims[best]) >= threshold else None


_caches: dict[tuple[Path, float, float], ResponseCache] = {}
_caches_lock = threading.Lock()


def _float_setting(settings: Mapping[str, Any], key: str, default: float) -> float:
    try:
        value = settings.get(key)
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def response_cache(settings: Mapping[str, Any]) -> Any:
    """The response cache these settings use: Redis when `redis_url` is set (shared by every
    instance, synapse/scale/response_cache.py), else the data folder's file."""
    from .scale.shared import redis_url

    url = redis_url(settings)
    if url:
        from .scale.response_cache import redis_cache

        return redis_cache(url, _float_setting(settings, "response_cache_ttl", DEFAULT_TTL),
                           _float_setting(settings, "response_cache_similarity", SEMANTIC_THRESHOLD))
    return _file_cache(settings)


def _file_cache(settings: Mapping[str, Any]) -> ResponseCache:
    """The response cache of the data folder these settings belong to."""
    path = getattr(settings, "path", None)
    if path is not None:
        folder = Path(path).parent
    else:
        from .settings import data_dir

        folder = data_dir()
    ttl = _float_setting(settings, "response_cache_ttl", DEFAULT_TTL)
    threshold = _float_setting(settings, "response_cache_similarity", SEMANTIC_THRESHOLD)
    key = (folder / "cache" / "responses.sqlite3", ttl, threshold)
    cache = _caches.get(key)
    if cache is None:
        with _caches_lock:
            cache = _caches.get(key)
            if cache is None:
                if len(_caches) > 16:
                    for old in _caches.values():
                        old.close()
                    _caches.clear()
                cache = _caches[key] = ResponseCache(*key)
    return cache
