"""A fake Chat Completions server with the quirks of each service that speaks it.

    fake = OpenAIFake(flavour="deepseek").start()
    configure(**fake.settings())          # deepseek_key + deepseek_base_url = fake.base_url
    ...
    fake.stop()

Flavours and where Synapse looks for them (`fake.settings()` returns exactly this):

    flavour     settings                                        base_url form
    openai      openai_key, openai_base_url                     http://127.0.0.1:PORT/v1
    xai         grok_key, grok_base_url                         http://127.0.0.1:PORT/v1
    deepseek    deepseek_key, deepseek_base_url                 http://127.0.0.1:PORT   (bare origin; /v1 works too)
    together    openai_compatible_key, openai_compatible_base_url  http://127.0.0.1:PORT/v1
    openrouter  openai_compatible_key, openai_compatible_base_url  http://127.0.0.1:PORT/api/v1
    local       local_compatible_base_url (+ local_compatible_key when keys are required)
                                                                http://127.0.0.1:PORT/v1

What each flavour reproduces (reference provider-protocols.md §3, §5, §7, §8.3/8.4, §9):

* openai: `obfuscation` and `"usage": null` on every chunk, the `choices: []` usage chunk
  (only with `stream_options.include_usage`), 401 `invalid_api_key`, 404 `model_not_found`,
  400 `context_length_exceeded`, o-series rejecting `max_tokens`/`temperature`,
  base64 embeddings on request.
* xai: a bad key is HTTP 400 `{"code": "...", "error": "<string>"}`; `reasoning_content`.
* deepseek: blank lines before non-streaming JSON, `: keep-alive` comments, both
  `content` and `reasoning_content` on every delta, usage on the finish chunk (no usage
  chunk), `prompt_cache_hit/miss_tokens`, 400 "Model Not Exist", no `/embeddings`, text
  only: an `image_url` part is a 400 "unknown variant `image_url`, expected `text`".
* together: `/models` is a bare JSON array with `type`; context too long is HTTP 403;
  usage on the finish chunk.
* openrouter: `: OPENROUTER PROCESSING` comments, no `usage` key until the usage chunk,
  numeric error codes, public `/models`, `/key` to check a key.
* local (vLLM / LM Studio): no key by default (`valid_keys={...}` turns on
  `{"error": "Unauthorized"}`), usage without details, any model name accepted unless
  `models=` is given, `reject_stream_options=True` answers like an old vLLM.

Steering, on top of `FakeServer` (`reply`, `fail_next`, `drop_next`):

* `FakeReply(text, tool_calls, reasoning, stop_reason, *_tokens, break_after_events,
  error_after_events)`. Usage left None: input = tokens of the prompt text (uncached),
  output = tokens of the reply (+ reasoning), reasoning = tokens of the reasoning;
  `prompt_tokens` on the wire = input + cache_read + cache_write.
* `fake.context_window` (tokens): prompt + max tokens above it gets the context error.
* `fake.write_mode`: "normal" (one write per event), "split" (every event cut into three
  writes, the first inside `data:`), "coalesce" (the whole stream in one write).
* `fake.stream_error`: the body of the in-stream error sent by `error_after_events`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import struct
import time
from typing import Any

from aiohttp import web

from .base import FakeReply, FakeServer, FakeToolCall, estimate_tokens, pace
from .openai_responses import RESPONSES_ONLY, ResponsesRoutes, _pieces

__all__ = ["OpenAIFake", "FakeReply", "FakeToolCall"]

_PREFIX = {"openai": "/v1", "xai": "/v1", "deepseek": "", "together": "/v1", "openrouter": "/api/v1", "local": "/v1",
           "mistral": "/v1", "groq": "/openai/v1"}
_KEYS = {
    "openai": "sk-proj-fakeopenai0123456789abcd",
    "xai": "xai-fakegrok0123456789abcdefgh",
    "deepseek": "sk-fakedeepseek0123456789abcd",
    "together": "tgp_v1_faketogether0123456789",
    "openrouter": "sk-or-v1-fakeopenrouter0123456789",
    "mistral": "fakemistral0123456789abcdefghij",
    "groq": "gsk_fakegroq0123456789abcdefghij",
}
_SETTINGS = {
    "openai": ("openai_key", "openai_base_url"),
    "xai": ("grok_key", "grok_base_url"),
    "deepseek": ("deepseek_key", "deepseek_base_url"),
    "together": ("openai_compatible_key", "openai_compatible_base_url"),
    "openrouter": ("openai_compatible_key", "openai_compatible_base_url"),
    "local": ("local_compatible_key", "local_compatible_base_url"),
    "mistral": ("openai_compatible_key", "openai_compatible_base_url"),
    "groq": ("openai_compatible_key", "openai_compatible_base_url"),
}
_MODELS = {
    "openai": ["gpt-4o-mini", "gpt-4.1", "gpt-5", "o3", "o3-mini", "o4-mini", "whisper-1", "dall-e-3",
               "gpt-4o-realtime-preview", "tts-1", "davinci-002"],
    "xai": ["grok-4", "grok-3-mini", "grok-2-image-1212"],
    "deepseek": ["deepseek-chat", "deepseek-reasoner"],
    "together": ["meta-llama/Llama-3.3-70B-Instruct-Turbo", "Qwen/Qwen2.5-7B-Instruct-Turbo"],
    "openrouter": ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5"],
    "local": ["qwen2.5-7b-instruct"],
    "mistral": ["mistral-large-latest", "magistral-medium-latest"],
    "groq": ["llama-3.3-70b-versatile", "qwen/qwen3-32b"],
}
_EMBED_MODELS = {
    "openai": ["text-embedding-3-small", "text-embedding-3-large"],
    "xai": [],
    "deepseek": [],
    "together": ["BAAI/bge-base-en-v1.5"],
    "openrouter": ["openai/text-embedding-3-small"],
    "local": ["nomic-embed-text-v1.5"],
    "mistral": ["mistral-embed"],
    "groq": [],
}
#: Models whose list entry says they read images (OpenRouter's `architecture`); tests may change it.
_VISION_MODELS = {"openrouter": {"openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5"}}
_O_SERIES = re.compile(r"^o[134](?:-|$)")
_DEFAULT_STREAM_ERROR = {
    "error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}


def _oai_error(message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _masked(key: str) -> str:
    """How OpenAI echoes a wrong key: its start, stars, its last four characters."""
    return key[:8] + "*" * 20 + key[-4:] if len(key) > 12 else "*" * len(key)


#: OpenAI's search models: the only Chat Completions models that take `web_search_options`.
_SEARCH_MODELS = ["gpt-4o-search-preview", "gpt-5-search-api"]


class OpenAIFake(ResponsesRoutes, FakeServer):
    """One Chat Completions server; `flavour` picks which service it imitates."""

    def __init__(
        self,
        valid_keys: set[str] | None = None,
        flavour: str = "openai",
        *,
        models: list[str] | None = None,
        embed_models: list[str] | None = None,
        reject_stream_options: bool = False,
    ) -> None:
        if flavour not in _PREFIX:
            raise ValueError(f"unknown flavour {flavour!r}: one of {', '.join(_PREFIX)}")
        self.flavour = flavour
        self.name = flavour
        super().__init__()
        #: local servers need no key unless started with one (vLLM --api-key).
        self.valid_keys = set(valid_keys) if valid_keys is not None else ({_KEYS[flavour]} if flavour in _KEYS else set())
        self.models = list(models if models is not None else _MODELS[flavour])
        self.embed_models = list(embed_models if embed_models is not None else _EMBED_MODELS[flavour])
        #: local: accept any model name unless `models` was given (LM Studio loads on demand).
        self.any_model = flavour == "local" and models is None
        self.reject_stream_options = reject_stream_options
        self.context_window = 128_000
        self.vision_models: set[str] = set(_VISION_MODELS.get(flavour, ()))
        self.write_mode = "normal"
        self.stream_error: dict[str, Any] = dict(_DEFAULT_STREAM_ERROR)
        self._ids = 0
        self._init_responses()

    # --- how to point Synapse here ---------------------------------------------------

    @property
    def base_url(self) -> str:
        """The value for this flavour's base-URL setting."""
        return self.url + _PREFIX[self.flavour]

    @property
    def key(self) -> str:
        return sorted(self.valid_keys)[0] if self.valid_keys else ""

    def settings(self, key: str | None = None) -> dict[str, str]:
        """Settings that send Synapse to this fake: `configure(**fake.settings())`."""
        key_setting, url_setting = _SETTINGS[self.flavour]
        out = {url_setting: self.base_url}
        k = self.key if key is None else key
        if k or self.flavour != "local":
            out[key_setting] = k
        return out

    def reset(self) -> None:
        super().reset()
        self.context_window = 128_000
        self.write_mode = "normal"
        self.stream_error = dict(_DEFAULT_STREAM_ERROR)

    # --- routes --------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        prefixes = {_PREFIX[self.flavour]}
        if self.flavour == "deepseek":
            prefixes.add("/v1")
        out: list[web.RouteDef] = []
        for p in sorted(prefixes):
            out += [web.post(p + "/chat/completions", self._chat), web.get(p + "/models", self._models)]
            if self.flavour != "deepseek":
                out.append(web.post(p + "/embeddings", self._embeddings))
            if self.flavour == "openrouter":
                out.append(web.get(p + "/key", self._key))
            if self.flavour == "openai":
                out.append(web.post(p + "/responses", self._responses))
        return out

    # --- auth ------------------------------------------------------------------------------

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if not self.valid_keys:
            return None
        header = request.headers.get("Authorization", "")
        key = header[7:] if header.startswith("Bearer ") else ""
        if key in self.valid_keys:
            return None
        f = self.flavour
        if f == "openai":
            if not key:
                return self._json(401, _oai_error(
                    "You didn't provide an API key. You need to provide your API key in an Authorization header "
                    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from "
                    "https://platform.openai.com/account/api-keys."))
            return self._json(401, _oai_error(
                f"Incorrect API key provided: {_masked(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.", code="invalid_api_key"))
        if f == "xai":
            shown = (key[:2] + "***" + key[-2:]) if key else "***"
            return self._json(400, {"code": "Client specified an invalid argument",
                                    "error": f"Incorrect API key provided: {shown}. You can obtain an API key from https://console.x.ai."})
        if f == "deepseek":
            return self._json(401, _oai_error(f"Authentication Fails, Your api key: ****{key[-4:]} is invalid",
                                              "authentication_error", code="invalid_request_error"))
        if f == "together":
            return self._json(401, _oai_error("Invalid API key provided. You can find your API key at "
                                              "https://api.together.xyz/settings/api-keys.", code="invalid_api_key"))
        if f == "openrouter":
            return self._json(401, {"error": {"message": "No auth credentials found" if not key else "User not found.", "code": 401}})
        return self._json(401, {"error": "Unauthorized"})  # vLLM --api-key

    # --- chat ------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        try:
            body = json.loads(await request.read())
            assert isinstance(body, dict)
        except Exception:
            return self._error(400, "We could not parse the JSON body of your request.", code=None)
        problem = self._check_types(body)
        if problem is not None:
            return problem
        problem = self._validate(body)
        if problem is not None:
            return problem
        prompt_tokens = estimate_tokens(_prompt_text(body))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if prompt_tokens + (limit or 0) > self.context_window:
            return self._context_error(prompt_tokens, limit or 0)
        reply = self.next_reply() or self._default_reply(body)
        text, finish = reply.text, reply.stop_reason
        for s in body.get("stop") or []:
            if s and s in text:
                text, finish = text[: text.index(s)], finish or "stop"
        if limit and estimate_tokens(text) > limit:
            text, finish = text[: limit * 4], finish or "length"
        if finish is None:
            finish = "tool_calls" if reply.tool_calls else "stop"
        usage = self._usage(reply, prompt_tokens, text)
        self._ids += 1
        rid = f"{self._ids:08x}-fake-uuid" if self.flavour == "deepseek" else f"chatcmpl-fake{self._ids}"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            always = ("deepseek", "together", "openrouter", "mistral", "groq")
            return await self._stream(request, body, reply, text, finish, usage if include_usage or self.flavour in always else None, rid)
        message: dict[str, Any] = {"role": "assistant", "content": text if (text or not reply.tool_calls) else None}
        if self.flavour == "openai":
            message["refusal"] = None
            message["annotations"] = self._annotations(body, reply, text)
        if self.flavour == "mistral" and reply.reasoning:  # magistral: a list of thinking and text parts
            message["content"] = [{"type": "thinking", "thinking": [{"type": "text", "text": reply.reasoning}]},
                                  {"type": "text", "text": text}]
        if reply.raw_content is not None:
            message["content"] = reply.raw_content
        if reply.reasoning and self.flavour in ("deepseek", "xai"):
            message["reasoning_content"] = reply.reasoning
        elif reply.reasoning and self.flavour in ("openrouter", "local"):
            message["reasoning"] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = [
                {**({"index": i} if self.flavour == "deepseek" else {}), "id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for i, c in enumerate(reply.tool_calls)
            ]
        data = {
            "id": rid, "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage, "system_fingerprint": "fp_fake",
        }
        if self.flavour == "deepseek":  # keep-alive blank lines before the JSON (§7.3)
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(b"\n")
            await resp.write(b"\n\n" + json.dumps(data).encode())
            await resp.write_eof()
            return resp
        return self._json(200, data)

    #: Field -> (the JSON types OpenAI accepts, how its type errors name them).
    _TYPES: dict[str, tuple[tuple[type, ...], str]] = {
        "model": ((str,), "a string"), "messages": ((list,), "an array of objects"),
        "temperature": ((int, float), "a decimal"), "top_p": ((int, float), "a decimal"),
        "max_tokens": ((int,), "an integer"), "max_completion_tokens": ((int,), "an integer"),
        "stream": ((bool,), "a boolean"), "n": ((int,), "an integer"),
    }

    def _check_types(self, body: dict[str, Any]) -> web.Response | None:
        """OpenAI checks each field's JSON type before anything else: "Invalid type for
        'temperature': expected a decimal, but got a string instead." (400 invalid_type)."""
        for name in ("model", "messages"):
            if name not in body:
                return self._error(400, f"Missing required parameter: '{name}'.", param=name,
                                   code="missing_required_parameter")
        for name, (types, wanted) in self._TYPES.items():
            value = body.get(name)
            if value is None or (isinstance(value, types) and not (isinstance(value, bool) and bool not in types)):
                continue
            got = {str: "a string", bool: "a boolean", list: "an array", dict: "an object"}.get(type(value), "a number")
            return self._error(400, f"Invalid type for '{name}': expected {wanted}, but got {got} instead.",
                               param=name, code="invalid_type")
        return None

    def _validate(self, body: dict[str, Any]) -> web.Response | None:
        model = body.get("model")
        f = self.flavour
        if "stream_options" in body and self.reject_stream_options:
            return self._json(400, {"object": "error", "message": "[{'type': 'extra_forbidden', 'loc': ('body', 'stream_options'), "
                                    "'msg': 'Extra inputs are not permitted'}]", "type": "BadRequestError", "param": None, "code": 400})
        if "stream_options" in body and not body.get("stream") and f != "local":
            return self._error(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options")
        if f == "openai" and model in self.responses_models:
            return self._error(404, "This model is only supported in v1/responses and not in v1/chat/completions.",
                               param="model")
        if "web_search_options" in body and (f != "openai" or model not in _SEARCH_MODELS):
            return self._error(400, "Web search options not supported with this model.", param="web_search_options")
        if not self.any_model and model not in self.models and not (f == "openai" and model in _SEARCH_MODELS):
            return self._unknown_model(str(model))
        if f == "openai" and _O_SERIES.match(str(model)):
            for name, hint in (("max_tokens", " Use 'max_completion_tokens' instead."), ("temperature", "")):
                if name in body:
                    return self._error(400, f"Unsupported parameter: '{name}' is not supported with this model.{hint}",
                                       param=name, code="unsupported_parameter")
        pending: list[str] = []
        for i, m in enumerate(body["messages"]):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ("system", "developer", "user", "assistant", "tool"):
                return self._error(400, f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'tool', 'function', and 'developer'.",
                                   param=f"messages[{i}].role", code="invalid_value")
            if role == "tool":
                if m.get("tool_call_id") not in pending:
                    return self._error(400, "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                                       "message with 'tool_calls'.", param=f"messages.[{i}].role")
                pending.remove(m["tool_call_id"])
                continue
            if pending:
                return self._unanswered(pending, i)
            content = m.get("content")
            if f == "deepseek" and isinstance(content, list) and any(
                    isinstance(p, dict) and p.get("type") == "image_url" for p in content):
                # DeepSeek's API takes text only; its deserializer names the part (recorded 400 body, §7.3)
                raw = json.dumps(body, separators=(",", ":"))
                column = raw.find('"image_url"') + len('"image_url"') + 1
                return self._error(400, f"Failed to deserialize the JSON body into the target type: messages[{i}]: "
                                   f"unknown variant `image_url`, expected `text` at line 1 column {column}",
                                   code="invalid_request_error")
            if role == "assistant":
                if f == "deepseek" and model == "deepseek-reasoner" and m.get("tool_calls") and not m.get("reasoning_content"):
                    # Thinking mode with tools (V3.2+): the tool-call turn's reasoning must come back (§7.3).
                    return self._error(400, "The reasoning_content in the thinking mode must be passed back to the API.",
                                       code="invalid_request_error")
                for call in m.get("tool_calls") or []:
                    if not isinstance(call.get("function", {}).get("arguments"), str):
                        return self._error(400, f"Invalid type for 'messages[{i}].tool_calls[0].function.arguments': expected a string.",
                                           param=f"messages[{i}].tool_calls[0].function.arguments", code="invalid_type")
                    pending.append(call["id"])
        if pending:
            return self._unanswered(pending, len(body["messages"]))
        return None

    def _unanswered(self, pending: list[str], i: int) -> web.Response:
        return self._error(400, "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                           f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
                           param=f"messages.[{i}].role")

    def _unknown_model(self, model: str) -> web.Response:
        f = self.flavour
        if f == "deepseek":
            return self._error(400, "Model Not Exist")
        if f == "xai":
            return self._json(404, {"code": "Some requested entity was not found",
                                    "error": f"The model {model} does not exist or your team does not have access to it."})
        if f == "openrouter":
            return self._json(400, {"error": {"message": f"{model} is not a valid model ID", "code": 400}})
        if f == "local":
            return self._json(404, {"error": {"message": f"The model `{model}` does not exist.", "type": "NotFoundError", "param": None, "code": 404}})
        return self._error(404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found")

    def _context_error(self, prompt: int, completion: int) -> web.Response:
        n, total = self.context_window, prompt + completion
        f = self.flavour
        if f == "xai":
            return self._json(400, {"code": "Client specified an invalid argument",
                                    "error": f"This model's maximum prompt length is {n} but the request contains {total} tokens."})
        if f == "together":
            return self._error(403, "Input token count + max_tokens parameter must be less than the context length "
                               f"({total} >= {n})", code=None)
        if f == "deepseek":
            return self._error(400, f"This model's maximum context length is {n} tokens. However, you requested {total} tokens "
                               f"({prompt} in the messages, {completion} in the completion). Please reduce the length of the "
                               "messages or completion.", code="invalid_request_error")
        if f == "openrouter":
            return self._json(400, {"error": {"message": f"This endpoint's maximum context length is {n} tokens. However, you "
                                              f"requested about {total} tokens.", "code": 400}})
        if f == "local":
            return self._json(400, {"object": "error", "message": f"This model's maximum context length is {n} tokens. However, "
                                    f"you requested {total} tokens.", "type": "BadRequestError", "param": None, "code": 400})
        return self._error(400, f"This model's maximum context length is {n} tokens. However, your messages resulted in "
                           f"{total} tokens. Please reduce the length of the messages.", param="messages", code="context_length_exceeded")

    @staticmethod
    def _annotations(body: dict[str, Any], reply: FakeReply, text: str) -> list[dict[str, Any]]:
        """A search model's url_citation annotations (only when the request asked to search)."""
        if "web_search_options" not in body or not reply.search_query:
            return []
        return [{"type": "url_citation", "url_citation": {"start_index": 0, "end_index": len(text), "url": url, "title": title}}
                for url, title in reply.sources]

    def _default_reply(self, body: dict[str, Any]) -> FakeReply:
        last = ""
        for m in reversed(body["messages"]):
            if m.get("role") == "user":
                last = _text_of(m.get("content"))
                break
        return FakeReply(text=f"You said: {last[:80]}")

    def _usage(self, reply: FakeReply, prompt_tokens: int, text: str) -> dict[str, Any]:
        uncached = reply.input_tokens if reply.input_tokens is not None else prompt_tokens
        read = reply.cache_read_tokens or 0
        write = reply.cache_write_tokens or 0
        reasoning = reply.reasoning_tokens if reply.reasoning_tokens is not None else estimate_tokens(reply.reasoning)
        args = "".join(json.dumps(c.arguments) for c in reply.tool_calls)
        out = reply.output_tokens if reply.output_tokens is not None else estimate_tokens(text + args) + reasoning
        prompt = uncached + read + write
        u: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}
        f = self.flavour
        if f == "deepseek":
            u["prompt_tokens_details"] = {"cached_tokens": read}
            u["prompt_cache_hit_tokens"] = read
            u["prompt_cache_miss_tokens"] = prompt - read
            u["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        elif f in ("local", "together"):
            if read:
                u["prompt_tokens_details"] = {"cached_tokens": read}
        else:
            details: dict[str, Any] = {"cached_tokens": read, "audio_tokens": 0}
            if write:
                details["cache_write_tokens"] = write
            u["prompt_tokens_details"] = details
            u["completion_tokens_details"] = {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
            if f == "openrouter":
                u["cost"] = 0.0001 * (prompt + out)
                u["is_byok"] = False
        return u

    # --- streaming -----------------------------------------------------------------------------

    async def _stream(self, request: web.Request, body: dict[str, Any], reply: FakeReply, text: str, finish: str,
                      usage: dict[str, Any] | None, rid: str) -> web.StreamResponse:
        f = self.flavour
        created = int(time.time())
        n = 0

        def chunk(delta: dict[str, Any] | None, finish_reason: str | None = None, with_usage: dict[str, Any] | None = None) -> dict[str, Any]:
            nonlocal n
            n += 1
            c: dict[str, Any] = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": body["model"]}
            if f == "openai":
                c["service_tier"] = "default"
                c["system_fingerprint"] = "fp_fake"
            if f == "groq":
                if with_usage is not None:  # Groq: streamed usage rides in x_groq on the last chunk
                    c["x_groq"] = {"id": f"req_{rid}", "usage": {**with_usage, "queue_time": 0.01, "prompt_time": 0.002,
                                                                 "completion_time": 0.04, "total_time": 0.052}}
            elif f not in ("openrouter", "mistral") or with_usage is not None:
                c["usage"] = with_usage
            if delta is None:
                c["choices"] = []
            else:
                choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                c["choices"] = [choice]
            if f == "openai":
                c["obfuscation"] = "xyzw"[: n % 5]
            return c

        def text_delta(piece: str | None, reasoning: str | None = None) -> dict[str, Any]:
            if f == "deepseek":
                return {"content": piece, "reasoning_content": reasoning}
            if f == "mistral" and reply.reasoning:  # magistral streams lists of parts
                if reasoning is not None:
                    return {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": reasoning}]}]}
                return {"content": [{"type": "text", "text": piece}]}
            if reasoning is not None:
                return {"reasoning_content" if f == "xai" else "reasoning": reasoning}
            return {"content": piece}

        chunks: list[dict[str, Any]] = []
        first: dict[str, Any] = {"role": "assistant", "content": "" if not reply.tool_calls or text else None}
        if f == "openai":
            first["refusal"] = None
        if f == "deepseek":
            first["reasoning_content"] = "" if reply.reasoning else None
            if reply.reasoning:
                first["content"] = None
        chunks.append(chunk(first))
        if f != "openai":  # Chat Completions streams no reasoning text from OpenAI's own models
            for piece in _pieces(reply.reasoning):
                chunks.append(chunk(text_delta(None, piece)))
        for piece in _pieces(text):
            chunks.append(chunk(text_delta(piece)))
        if reply.raw_content is not None:
            chunks.append(chunk({"content": reply.raw_content}))
        annotations = self._annotations(body, reply, text) if f == "openai" else []
        if annotations:
            chunks.append(chunk({"annotations": annotations}))
        for i, call in enumerate(reply.tool_calls):
            chunks.append(chunk({"tool_calls": [{"index": i, "id": call.id, "type": "function",
                                                 "function": {"name": call.name, "arguments": ""}}]}))
            for piece in _pieces(json.dumps(call.arguments), 3):
                chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
        on_finish = f in ("deepseek", "together", "mistral", "groq")
        last_delta: dict[str, Any] = {"content": "", "reasoning_content": None} if f == "deepseek" else {}
        chunks.append(chunk(last_delta, finish, usage if on_finish else None))
        if usage is not None and not on_finish:
            chunks.append(chunk(None, None, usage))

        frames = [b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in chunks]
        if reply.error_after_events is not None:
            frames = frames[: reply.error_after_events] + [b"data: " + json.dumps(self.stream_error).encode() + b"\n\n"]
        elif reply.break_after_events is None:
            frames.append(b"data: [DONE]\n\n")
        comment = {"deepseek": b": keep-alive\n\n", "openrouter": b": OPENROUTER PROCESSING\n\n"}.get(f)
        if comment:  # before the first event and between events, as under load
            frames = [comment] + frames[:2] + [comment] + frames[2:]

        resp = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
            "x-request-id": f"req_{rid}",
        })
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        sent = 0
        if self.write_mode == "coalesce" and reply.break_after_events is None:
            await resp.write(b"".join(frames))
        else:
            for frame in frames:
                if reply.break_after_events is not None and frame.startswith(b"data:"):
                    if sent == reply.break_after_events:
                        assert request.transport is not None
                        request.transport.close()  # the connection drops mid-stream
                        return resp
                    sent += 1
                if self.write_mode == "split":
                    mid = max(4, len(frame) // 2)
                    for part in (frame[:3], frame[3:mid], frame[mid:]):
                        await resp.write(part)
                        await asyncio.sleep(0.001)
                else:
                    await pace(self, reply, b'"content":"' in frame and b'"content":""' not in frame)
                    await resp.write(frame)
        await resp.write_eof()
        return resp

    # --- models, embeddings, key ---------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        if self.flavour != "openrouter":  # OpenRouter's model list is public
            denied = self._auth_error(request)
            if denied is not None:
                return denied
        created = 1_715_367_049
        if self.flavour == "together":
            items = [{"id": m, "object": "model", "created": created, "type": "chat", "display_name": m.split("/")[-1],
                      "organization": m.split("/")[0], "context_length": 131072} for m in self.models]
            items += [{"id": m, "object": "model", "created": created, "type": "embedding", "display_name": m.split("/")[-1],
                       "organization": m.split("/")[0], "context_length": 512} for m in self.embed_models]
            return self._json(200, items)
        owner = {"openai": "system", "xai": "xai", "deepseek": "deepseek", "local": "organization_owner"}.get(self.flavour, "")
        data = [{"id": m, "object": "model", "created": created, "owned_by": owner} for m in self.models + self.embed_models]
        if self.flavour == "openrouter":  # what each model reads: `architecture.input_modalities` (§7.1)
            data = [{"id": m, "canonical_slug": m, "name": m, "created": created, "context_length": 128000,
                     "architecture": {"modality": "text+image->text" if m in self.vision_models else "text->text",
                                      "input_modalities": ["text", "image"] if m in self.vision_models else ["text"],
                                      "output_modalities": ["text"], "tokenizer": "Other", "instruct_type": None}}
                    for m in self.models]
        return self._json(200, {"object": "list", "data": data})

    async def _key(self, request: web.Request) -> web.Response:
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        return self._json(200, {"data": {"label": "sk-or-v1-fak...789", "usage": 0, "limit": None, "is_free_tier": False}})

    async def _embeddings(self, request: web.Request) -> web.Response:
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        body = json.loads(await request.read())
        model = body.get("model")
        if model not in self.embed_models and not self.any_model:
            return self._unknown_model(str(model))
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        dims = int(body.get("dimensions") or 8)
        data = []
        for i, t in enumerate(texts):
            vec = embedding_for(t, dims)
            item: Any = vec
            if body.get("encoding_format") == "base64":
                item = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": item})
        tokens = sum(estimate_tokens(t) for t in texts)
        return self._json(200, {"object": "list", "data": data, "model": model,
                                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    # --- helpers --------------------------------------------------------------------------------

    def _json(self, status: int, data: Any) -> web.Response:
        return web.Response(status=status, body=json.dumps(data).encode(), content_type="application/json")

    def _error(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> web.Response:
        if self.flavour == "openrouter":
            return self._json(status, {"error": {"message": message, "code": status}})
        if self.flavour == "local":
            return self._json(status, {"object": "error", "message": message, "type": "BadRequestError", "param": param, "code": status})
        return self._json(status, _oai_error(message, param=param, code=code))


def embedding_for(text: str, dims: int = 8) -> list[float]:
    """The fake's deterministic unit vector for a text (float32-exact)."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dims)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *(v / norm for v in raw))))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _prompt_text(body: dict[str, Any]) -> str:
    texts = []
    for m in body["messages"]:
        texts.append(_text_of(m.get("content")))
        for call in m.get("tool_calls") or []:
            texts.append(call.get("function", {}).get("arguments", ""))
    if body.get("tools"):
        texts.append(json.dumps(body["tools"]))
    return " ".join(t for t in texts if t)
