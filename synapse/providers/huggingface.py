"""Hugging Face models in-process (`hf.<repo id>`), through a transformers text-generation pipeline.

transformers and torch are optional and heavy: nothing is imported at module load, and
every call says how to install them when they are missing. A pipeline is built once per
repo id and reused; generation runs in a worker thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator
from typing import Any

from ..errors import BadRequestError, ProviderNotInstalledError
from ..types import (
    Embeddings,
    ModelInfo,
    Request,
    Response,
    ResponseDone,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolResultPart,
    Usage,
)
from .base import Adapter
from .catalog import ProviderConfig, ProviderSpec

__all__ = ["HuggingFaceAdapter", "INSTALL_HINT", "build"]

INSTALL_HINT = "Hugging Face local models need the transformers and torch packages: pip install 'transformers' 'torch'"


def build(spec: ProviderSpec, config: ProviderConfig) -> "HuggingFaceAdapter":
    return HuggingFaceAdapter(spec, config)


def _require_transformers() -> None:
    if importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None:
        raise ProviderNotInstalledError(INSTALL_HINT)


def _chat_messages(req: Request) -> list[dict[str, str]]:
    """Canonical turns -> the role/content list a chat template takes (text only)."""
    out: list[dict[str, str]] = []
    if req.system:
        out.append({"role": "system", "content": "\n\n".join(p.text for p in req.system)})
    for m in req.messages:
        texts: list[str] = []
        for part in m.content:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, ToolResultPart):
                out.append({"role": "tool", "content": part.content})
            elif isinstance(part, ToolCall):
                raise BadRequestError("Hugging Face local models do not take tool calls in Synapse yet", provider="hf")
            else:
                raise BadRequestError("Hugging Face local models take text only in Synapse", provider="hf")
        if texts:
            out.append({"role": m.role, "content": "".join(texts)})
    return out


class HuggingFaceAdapter(Adapter):
    """Runs `hf.<repo id>` with transformers; raises ProviderNotInstalledError without it."""

    def __init__(self, spec: ProviderSpec, config: ProviderConfig) -> None:
        super().__init__(spec, config)
        self._pipelines: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _pipeline(self, model: str) -> Any:
        with self._lock:
            pipe = self._pipelines.get(model)
            if pipe is None:
                from transformers import pipeline

                pipe = self._pipelines[model] = pipeline("text-generation", model=model)
            return pipe

    def _generate(self, req: Request) -> Response:
        if req.tools:
            raise BadRequestError("Hugging Face local models do not take tools in Synapse yet", provider=self.spec.id)
        pipe = self._pipeline(req.model)
        messages = _chat_messages(req)
        kwargs: dict[str, Any] = {"return_full_text": False}
        if req.max_tokens is not None:
            kwargs["max_new_tokens"] = req.max_tokens
        if req.temperature is not None:
            kwargs["do_sample"] = req.temperature > 0
            if req.temperature > 0:
                kwargs["temperature"] = req.temperature
        if req.stop:
            kwargs["stop_strings"] = list(req.stop)
            kwargs["tokenizer"] = pipe.tokenizer
        out = pipe(messages, **kwargs)
        text = str(out[0]["generated_text"]) if out else ""
        stop_reason = "end_turn"
        for stop in req.stop:
            if stop and stop in text:
                text, stop_reason = text[: text.index(stop)], "stop_sequence"
        tokenizer = pipe.tokenizer
        prompt_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        output_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if stop_reason == "end_turn" and req.max_tokens is not None and output_tokens >= req.max_tokens:
            stop_reason = "max_tokens"
        return Response(
            text=text,
            tool_calls=[],
            stop_reason=stop_reason,  # type: ignore[arg-type]
            usage=Usage(input_tokens=len(prompt_ids), output_tokens=output_tokens),
            provider=self.spec.id,
            model=req.model,
            raw_stop_reason=None,
        )

    async def chat(self, req: Request) -> Response:
        _require_transformers()
        return await asyncio.to_thread(self._generate, req)

    async def stream(self, req: Request) -> AsyncIterator[StreamEvent]:
        """Generates the whole reply, then yields it as one delta (no token streaming yet)."""
        _require_transformers()
        response = await asyncio.to_thread(self._generate, req)
        if response.text:
            yield TextDelta(response.text)
        yield ResponseDone(response)

    async def list_models(self) -> list[ModelInfo]:
        return []

    async def verify(self) -> list[ModelInfo]:
        _require_transformers()
        return []

    async def embed(self, model: str, texts: list[str]) -> Embeddings:
        _require_transformers()
        raise BadRequestError(
            "Hugging Face local embedding models are not supported yet: leave embedding_model empty for the "
            "bundled local model",
            provider=self.spec.id,
        )
