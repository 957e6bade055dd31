"""Hugging Face models in Synapse's own process (`hf.<repo id or local folder>`).

transformers and torch are the optional `hf` extra and heavy: nothing is imported at
module load, and every call says how to install them when they are missing. A model
loads once (on the GPU when there is one) and stays loaded until it has been idle for
`hf_keep_loaded_minutes`; loading reports its stages to listeners (the CLI prints
them, the Models card shows them). Generation runs in a worker thread: a streamer
hands each decoded piece to the event loop, which is never blocked; one generation at
a time per model (torch modules are not safe to share between concurrent calls).

The prompt is the model's own chat template (with `tools=` when the template takes
tools); stop sequences are cut here, by text, whatever the tokenizer; tool calls are
read from the three formats chat templates teach models: Hermes/Qwen `<tool_call>{...}
</tool_call>`, Mistral `[TOOL_CALLS][...]` and Llama's bare `{"name", "parameters"}`.
Usage is counted with the tokenizer: prompt tokens as templated, generated tokens.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..embed_mode import EmbedMode
from ..errors import BadRequestError, ContextTooLongError, ProviderNotInstalledError
from ..types import (
    ImagePart,
    Embeddings,
    ModelInfo,
    ReasoningPart,
    Request,
    Response,
    ResponseDone,
    ServerToolPart,
    StopReason,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolResultPart,
    Usage,
)
from .base import Adapter
from .catalog import ProviderConfig, ProviderSpec

__all__ = [
    "INSTALL_HINT",
    "LoadProgress",
    "HuggingFaceAdapter",
    "add_progress_listener",
    "build",
    "loaded_models",
    "loading",
    "remove_progress_listener",
    "runtime_info",
    "unload_all",
]

INSTALL_HINT = (
    "Hugging Face local models need transformers and torch: pip install 'synapse-llm[hf]' "
    "(or pip install -r requirements-hf.lock)"
)
#: Generated tokens when the caller gives no max_tokens (the model's own default is often 20).
DEFAULT_MAX_NEW_TOKENS = 1024

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_MARKERS = ("<tool_call>", "[TOOL_CALLS]")


def build(spec: ProviderSpec, config: ProviderConfig) -> "HuggingFaceAdapter":
    return HuggingFaceAdapter(spec, config)


def _require() -> None:
    if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None:
        raise ProviderNotInstalledError(INSTALL_HINT)


# --- loading, progress, unloading ---------------------------------------------------------------


@dataclass(slots=True)
class LoadProgress:
    """Where a model's first load is: `stage` is tokenizer, weights, device, ready or failed."""

    model: str
    stage: str
    started: float = field(default_factory=time.monotonic)
    device: str = ""
    error: str = ""
    seconds: float = 0.0

    def describe(self) -> str:
        took = f"{self.seconds:.1f} s" if self.stage in ("ready", "failed") else f"{time.monotonic() - self.started:.1f} s"
        words = {
            "tokenizer": "loading the tokenizer",
            "weights": "loading the weights",
            "device": f"moving the weights to {self.device}",
            "ready": f"ready on {self.device}",
            "failed": f"failed: {self.error}",
        }.get(self.stage, self.stage)
        return f"hf.{self.model}: {words} ({took})"

    def as_dict(self) -> dict[str, Any]:
        return {"model": f"hf.{self.model}", "stage": self.stage, "device": self.device, "detail": self.describe()}


@dataclass(slots=True)
class _Loaded:
    model: Any
    tokenizer: Any
    device: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    timer: threading.Timer | None = None
    max_positions: int = 0


_models: dict[str, _Loaded] = {}
_load_locks: dict[str, threading.Lock] = {}
_registry = threading.Lock()
_progress: dict[str, LoadProgress] = {}
_listeners: list[Callable[[LoadProgress], None]] = []


def add_progress_listener(fn: Callable[[LoadProgress], None]) -> None:
    """Call `fn(progress)` at each stage of a model's load (from the loading thread)."""
    if fn not in _listeners:
        _listeners.append(fn)


def remove_progress_listener(fn: Callable[[LoadProgress], None]) -> None:
    if fn in _listeners:
        _listeners.remove(fn)


def loading() -> list[dict[str, Any]]:
    """The loads in progress, and the last finished one of each model (for the Models card)."""
    return [p.as_dict() for p in list(_progress.values())]


def loaded_models() -> list[str]:
    return sorted(_models)


def _report(p: LoadProgress, stage: str, **changes: Any) -> None:
    p.stage = stage
    for key, value in changes.items():
        setattr(p, key, value)
    if stage in ("ready", "failed"):
        p.seconds = time.monotonic() - p.started
    for fn in tuple(_listeners):
        try:
            fn(p)
        except Exception:  # a listener must never break a load
            pass


def _device(torch: Any) -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def runtime_info() -> dict[str, Any]:
    """Whether transformers and torch are installed, their versions and the device (imports torch)."""
    info: dict[str, Any] = {"transformers": None, "torch": None, "device": None}
    if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None:
        return info
    import torch
    import transformers

    info.update(transformers=transformers.__version__, torch=str(torch.__version__), device=_device(torch))
    return info


def _load(name: str) -> _Loaded:
    """The model and tokenizer for `name` (a Hub id or a local folder), loading them once."""
    with _registry:
        loaded = _models.get(name)
        if loaded is not None:
            return loaded
        lock = _load_locks.setdefault(name, threading.Lock())
    with lock:
        loaded = _models.get(name)
        if loaded is not None:
            return loaded
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = _device(torch)
        progress = _progress[name] = LoadProgress(name, "tokenizer", device=device)
        _report(progress, "tokenizer")
        try:
            tokenizer: Any = AutoTokenizer.from_pretrained(name)
            _report(progress, "weights")
            dtype = "auto" if device != "cpu" else torch.float32
            model: Any = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
            _report(progress, "device")
            model.to(device)
            model.eval()
        except OSError as exc:
            _report(progress, "failed", error=str(exc).splitlines()[0][:300])
            raise BadRequestError(
                f"Hugging Face could not load {name!r}: give a Hub repo id or the path of a local model folder "
                f"({str(exc).splitlines()[0][:300]})",
                provider="hf",
            ) from None
        except Exception as exc:
            _report(progress, "failed", error=f"{type(exc).__name__}: {exc}"[:300])
            raise
        max_positions = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        loaded = _Loaded(model, tokenizer, device, max_positions=max_positions)
        with _registry:
            _models[name] = loaded
        _report(progress, "ready")
        return loaded


def _unload(name: str, stamp: float | None = None) -> None:
    """Drop a model (only if unused since `stamp`, when given) and give its memory back."""
    with _registry:
        loaded = _models.get(name)
        if loaded is None or (stamp is not None and loaded.last_used != stamp):
            return
        if not loaded.lock.acquire(blocking=False):
            return  # generating right now: the call's end schedules the next check
        try:
            del _models[name]
            _progress.pop(name, None)
        finally:
            loaded.lock.release()
    if loaded.timer is not None:
        loaded.timer.cancel()
    import gc

    del loaded
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - freeing memory is best effort
        pass


def unload_all() -> None:
    """Unload every model now (tests, and a process that wants its memory back)."""
    for name in list(_models):
        _unload(name)


def _keep(name: str, loaded: _Loaded, minutes: float) -> None:
    """After a call: unload `name` once it has been idle for `minutes` (0: right away)."""
    loaded.last_used = stamp = time.monotonic()
    if loaded.timer is not None:
        loaded.timer.cancel()
    if minutes <= 0:
        _unload(name)
        return
    timer = threading.Timer(minutes * 60.0, _unload, (name, stamp))
    timer.daemon = True
    loaded.timer = timer
    timer.start()


# --- prompt ------------------------------------------------------------------------------------


def _chat_messages(req: Request) -> list[dict[str, Any]]:
    """Canonical turns -> the message dicts a chat template takes (transformers' format)."""
    out: list[dict[str, Any]] = []
    if req.system:
        out.append({"role": "system", "content": "\n\n".join(p.text for p in req.system)})
    for m in req.messages:
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in m.content:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, ToolCall):
                calls.append({"id": part.id, "type": "function",
                              "function": {"name": part.name, "arguments": part.arguments}})
            elif isinstance(part, ToolResultPart):
                out.append({"role": "tool", "content": part.content, "name": part.name or "",
                            "tool_call_id": part.tool_call_id})
            elif isinstance(part, ImagePart):
                raise BadRequestError("Hugging Face local models take text only in Synapse: drop the image",
                                      provider="hf")
            elif isinstance(part, (ReasoningPart, ServerToolPart)):
                continue  # another provider's opaque blocks
        if texts or calls:
            msg: dict[str, Any] = {"role": m.role, "content": "".join(texts)}
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
    return out


def _template_text(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        return " ".join(str(v) for v in template.values())
    return str(template or "")


def _encode(loaded: _Loaded, req: Request, name: str) -> Any:
    tokenizer = loaded.tokenizer
    template = _template_text(tokenizer)
    if not template:
        raise BadRequestError(f"hf.{name} has no chat template, so it is not a chat model: pick an instruct/chat model",
                              provider="hf")
    kwargs: dict[str, Any] = {}
    if req.tools:
        if "tools" not in template:
            raise BadRequestError(f"hf.{name}'s chat template does not take tools: call it without tools, or pick a "
                                  "model whose template supports tool use", provider="hf")
        kwargs["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in req.tools
        ]
    return tokenizer.apply_chat_template(_chat_messages(req), add_generation_prompt=True, return_tensors="pt",
                                         return_dict=True, **kwargs)


# --- text: stop sequences and tool-call markup -------------------------------------------------------


class _TextFilter:
    """Decides which generated text may be shown yet: nothing past a stop sequence, and
    nothing from tool-call markup on (it becomes ToolCalls at the end). A possible start
    of either at the end of the text is held back until the next piece shows what it is."""

    __slots__ = ("stops", "markers", "json_start", "text", "emitted", "stop_at", "held_at")

    def __init__(self, stops: list[str], tools: bool) -> None:
        self.stops = [s for s in stops if s]
        self.markers = _MARKERS if tools else ()
        self.json_start = tools  # Llama answers a tool call with bare JSON
        self.text = ""
        self.emitted = 0
        self.stop_at: int | None = None
        self.held_at: int | None = None

    def feed(self, piece: str) -> str:
        if self.stop_at is not None:
            return ""
        self.text += piece
        limit = len(self.text)
        for s in self.stops:
            i = self.text.find(s)
            if i >= 0 and (self.stop_at is None or i < self.stop_at):
                self.stop_at = i
        if self.stop_at is not None:
            limit = self.stop_at
        for m in self.markers:
            j = self.text.find(m)
            if j >= 0 and (self.held_at is None or j < self.held_at):
                self.held_at = j
        if self.held_at is not None:
            limit = min(limit, self.held_at)
        head = self.text.lstrip()
        if self.json_start and self.emitted == 0 and (
            head.startswith(("{", "<|python_tag|>")) or "<|python_tag|>".startswith(head)
        ):
            limit = 0  # maybe Llama's bare JSON tool call: wait for the whole reply
        elif self.stop_at is None and self.held_at is None:
            limit -= self._partial(self.text[:limit])
        out = self.text[self.emitted:limit] if limit > self.emitted else ""
        self.emitted = max(self.emitted, limit)
        return out

    def _partial(self, text: str) -> int:
        """Length of the longest end of `text` that could begin a stop sequence or marker."""
        best = 0
        for s in (*self.stops, *self.markers):
            for k in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:k]):
                    best = k
                    break
        return best

    def finish(self) -> tuple[str, str, list[ToolCall]]:
        """(text still to show, the whole visible text, tool calls)."""
        visible = self.text if self.stop_at is None else self.text[: self.stop_at]
        calls: list[ToolCall] = []
        if self.markers or self.json_start:
            visible, calls = parse_tool_calls(visible)
        rest = visible[self.emitted:] if len(visible) > self.emitted else ""
        return rest, visible, calls


def _call(obj: Any) -> ToolCall | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", obj["name"], args)


def parse_tool_calls(text: str) -> tuple[str, list[ToolCall]]:
    """(text without tool-call markup, the calls) from Hermes/Qwen, Mistral or Llama output.
    Markup that does not hold valid JSON stays text."""
    calls: list[ToolCall] = []
    if "<tool_call>" in text:
        kept = text
        for match in _TOOL_CALL.finditer(text):
            try:
                call = _call(json.loads(match.group(1)))
            except ValueError:
                call = None
            if call is not None:
                calls.append(call)
                kept = kept.replace(match.group(0), "", 1)
        return kept.strip() if calls else text, calls
    if "[TOOL_CALLS]" in text:
        head, _, tail = text.partition("[TOOL_CALLS]")
        try:
            items = json.loads(tail.strip())
        except ValueError:
            return text, []
        for item in items if isinstance(items, list) else [items]:
            call = _call(item)
            if call is not None:
                calls.append(call)
        return (head.strip(), calls) if calls else (text, [])
    stripped = text.strip().removeprefix("<|python_tag|>").strip()
    if stripped.startswith("{"):
        try:
            call = _call(json.loads(stripped))
        except ValueError:
            call = None
        if call is not None:
            return "", [call]
    return text, []


# --- generation ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Generated:
    prompt_tokens: int
    output_tokens: int
    limit: int
    ended_by_eos: bool


def _generate(loaded: _Loaded, req: Request, name: str, on_text: Callable[[str], None], cancel: threading.Event) -> _Generated:
    """Run `generate` (blocking, in a worker thread), handing each new piece of text to `on_text`."""
    import torch
    import transformers

    # Any-typed bases: mypy checks this module with and without transformers installed.
    base_streamer: Any = transformers.generation.streamers.BaseStreamer
    base_criteria: Any = transformers.StoppingCriteria

    tokenizer = loaded.tokenizer
    with loaded.lock:
        inputs = _encode(loaded, req, name).to(loaded.device)
        prompt_len = int(inputs["input_ids"].shape[-1])
        room = loaded.max_positions - prompt_len if loaded.max_positions else DEFAULT_MAX_NEW_TOKENS
        if room <= 0:
            raise ContextTooLongError(
                f"the prompt ({prompt_len} tokens) does not fit hf.{name}'s context of {loaded.max_positions} tokens: "
                "shorten it", provider="hf")
        limit = min(req.max_tokens or DEFAULT_MAX_NEW_TOKENS, room)
        stops = [s for s in req.stop if s]

        class Streamer(base_streamer):
            """Decodes the new tokens and hands on the text they add."""

            def __init__(self) -> None:
                self.ids: list[int] = []
                self.sent = ""
                self.prompt = True

            def put(self, value: Any) -> None:
                if self.prompt:  # generate() hands the prompt over first
                    self.prompt = False
                    return
                self.ids.extend(int(i) for i in value.reshape(-1).tolist())
                text = tokenizer.decode(self.ids, skip_special_tokens=True)
                if text.endswith("\ufffd"):
                    return  # half a multi-byte character: wait for the rest
                if text.startswith(self.sent) and len(text) > len(self.sent):
                    on_text(text[len(self.sent):])
                    self.sent = text

            def end(self) -> None:
                pass

        class Stop(base_criteria):
            """Stop on a cancelled call or a stop sequence in the decoded text (any tokenizer)."""

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                done = cancel.is_set()
                if not done and stops:
                    tail = tokenizer.decode(input_ids[0, prompt_len:], skip_special_tokens=True)
                    done = any(s in tail for s in stops)
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

        kwargs: dict[str, Any] = {"max_new_tokens": limit, "streamer": Streamer(),
                                  "stopping_criteria": transformers.StoppingCriteriaList([Stop()])}
        if req.temperature is not None:
            kwargs["do_sample"] = req.temperature > 0
            if req.temperature > 0:
                kwargs["temperature"] = req.temperature
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            kwargs["pad_token_id"] = tokenizer.eos_token_id
        if req.extra:
            kwargs.update(req.extra)  # generate() options: top_p, top_k, repetition_penalty, ...
        with torch.inference_mode():
            out = loaded.model.generate(**inputs, **kwargs)
        new = out[0, prompt_len:].tolist()
        eos = loaded.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        return _Generated(prompt_len, len(new), limit, bool(new) and new[-1] in eos_ids)


# --- the adapter -------------------------------------------------------------------------------------


class HuggingFaceAdapter(Adapter):
    """Runs `hf.<repo id or folder>` with transformers; raises ProviderNotInstalledError without it."""

    def _model(self, req: Request) -> _Loaded:
        return _load(req.model)

    def _response(self, req: Request, gen: _Generated, flt: _TextFilter) -> tuple[str, Response]:
        rest, text, calls = flt.finish()
        stop: StopReason
        if calls:
            stop, raw = "tool_use", "tool_calls"
        elif flt.stop_at is not None:
            stop, raw = "stop_sequence", "stop_string"
        elif gen.output_tokens >= gen.limit and not gen.ended_by_eos:
            stop, raw = "max_tokens", "length"
        else:
            stop, raw = "end_turn", "eos" if gen.ended_by_eos else "stop"
        return rest, Response(
            text=text,
            tool_calls=calls,
            stop_reason=stop,
            usage=Usage(input_tokens=gen.prompt_tokens, output_tokens=gen.output_tokens),
            provider=self.spec.id,
            model=req.model,
            raw_stop_reason=raw,
        )

    async def chat(self, req: Request) -> Response:
        _require()
        loaded = await asyncio.to_thread(self._model, req)
        flt = _TextFilter(req.stop, bool(req.tools))

        def collect(piece: str) -> None:
            flt.feed(piece)

        try:
            gen = await asyncio.to_thread(_generate, loaded, req, req.model, collect, threading.Event())
        finally:
            _keep(req.model, loaded, self.config.keep_loaded_minutes)
        return self._response(req, gen, flt)[1]

    async def stream(self, req: Request) -> AsyncIterator[StreamEvent]:
        """Token by token: the worker thread puts each decoded piece on a queue the loop reads."""
        _require()
        loaded = await asyncio.to_thread(self._model, req)
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        flt = _TextFilter(req.stop, bool(req.tools))
        cancel = threading.Event()

        def on_text(piece: str) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        def finished(_: Any) -> None:
            pieces.put_nowait(None)
            _keep(req.model, loaded, self.config.keep_loaded_minutes)  # idle from now on

        job = loop.run_in_executor(None, _generate, loaded, req, req.model, on_text, cancel)
        job.add_done_callback(finished)
        try:
            while True:
                piece = await pieces.get()
                if piece is None:
                    break
                shown = flt.feed(piece)
                if shown:
                    yield TextDelta(shown)
            gen = await job
        finally:
            cancel.set()  # if the caller stopped reading, generation stops at the next token
        rest, response = self._response(req, gen, flt)
        if rest:
            yield TextDelta(rest)
        for i, call in enumerate(response.tool_calls):
            yield ToolCallDelta(i, call.id, call.name, json.dumps(call.arguments))
        yield ResponseDone(response)

    async def list_models(self) -> list[ModelInfo]:
        """The models loaded in this process."""
        return [self.model_info(name) for name in loaded_models()]

    async def verify(self) -> list[ModelInfo]:
        _require()
        await asyncio.to_thread(runtime_info)
        return await self.list_models()

    def status_detail(self) -> str:
        """What the Models card says once checked: versions and the device."""
        info = runtime_info()
        if not info["transformers"]:
            return INSTALL_HINT
        loaded = ", ".join(f"hf.{m}" for m in loaded_models())
        return (f"transformers {info['transformers']} and torch {info['torch']} installed; models run on "
                f"{info['device']}" + (f"; loaded: {loaded}" if loaded else "; no model loaded yet"))

    async def embed(self, model: str, texts: list[str], *, mode: EmbedMode | None = None) -> Embeddings:
        _require()
        raise BadRequestError(
            "Hugging Face local embedding models are not supported yet: leave embedding_model empty for the "
            "bundled local model",
            provider=self.spec.id,
        )
