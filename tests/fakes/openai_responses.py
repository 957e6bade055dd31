"""OpenAI's Responses API (`POST /v1/responses`) for the `openai` flavour of OpenAIFake.

Written from the openai-python types (`types/responses/`) and OpenAI's streaming-events
reference. What it reproduces:

* the request: `input` items (messages with input_text / input_image parts, function_call,
  function_call_output, reasoning), `instructions`, function tools with `strict`
  defaulting to true (a schema that is not strict-ready is rejected, as for real),
  `web_search` / `code_interpreter` tools, `include`, `store` (default true),
  `max_output_tokens`; unknown parameters (`stop`, `max_tokens`, `messages`) are 400
  `unknown_parameter`; reasoning models reject `temperature`;
* reasoning continuity: reasoning models always return a `reasoning` item; with
  `include: ["reasoning.encrypted_content"]` it carries an encrypted (here: signed)
  copy. Sent back, an item with encrypted content must verify ("could not be
  verified"); one with only an id must have been stored ("Items are not persisted when
  `store` is set to false"); a reasoning item needs a following item; non-reasoning
  models reject the include ("Encrypted content is not supported with this model");
* tool continuity: a function_call_output needs its function_call, and a function_call
  needs its output before the next message;
* the reply: output items (reasoning, web_search_call, code_interpreter_call, message
  with url_citation annotations, function_call), `status` completed / incomplete
  (`max_output_tokens`, `content_filter`) / failed, usage with `input_tokens` including
  `cached_tokens` and `output_tokens` including `reasoning_tokens`;
* the stream: `event:` + `data:` SSE with `sequence_number`, `response.created`,
  `in_progress`, `output_item.added/done`, `content_part.added/done`, `output_text.delta`,
  `reasoning_summary_*`, `function_call_arguments.delta/done`, `web_search_call.*`, then
  `response.completed` / `incomplete` / `failed`; `error_after_events` sends an `error`
  event, `break_after_events` drops the connection.

Steering is the FakeServer one (`reply(FakeReply(...))`): `reasoning` is the summary
text (returned only when the request asks for `reasoning.summary`), `stop_reason`
"content_filter" or "failed" picks those outcomes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any

from aiohttp import web

from .base import FakeReply, estimate_tokens

__all__ = ["RESPONSES_ONLY", "ResponsesRoutes", "verify_encrypted"]

#: Models only /v1/responses serves (Chat Completions refuses them).
RESPONSES_ONLY = ["o3-pro", "gpt-5-pro", "gpt-5-codex", "codex-mini-latest"]
_REASONING = re.compile(r"^(?:o[134]|gpt-5(?!-chat)|codex)")
_SECRET = b"fake-openai-reasoning-key"
_PARAMS = frozenset(
    "model input instructions tools tool_choice max_output_tokens temperature top_p stream store include reasoning "
    "text metadata parallel_tool_calls previous_response_id truncation user service_tier prompt_cache_key background "
    "max_tool_calls safety_identifier stream_options top_logprobs conversation prompt".split()
)
_INCLUDES = (
    "code_interpreter_call.outputs", "computer_call_output.output.image_url", "file_search_call.results",
    "message.input_image.image_url", "message.output_text.logprobs", "reasoning.encrypted_content",
    "web_search_call.action.sources", "web_search_call.results",
)


def _encrypt(item_id: str, model: str, summary: str) -> str:
    payload = base64.b64encode(json.dumps({"id": item_id, "model": model, "summary": summary}).encode()).decode()
    sig = hmac.new(_SECRET, payload.encode(), hashlib.sha256).hexdigest()[:24]
    return f"gAAAAB{payload}.{sig}"


def verify_encrypted(blob: Any) -> dict[str, Any] | None:
    """The reasoning item an encrypted_content blob stands for, or None if it was altered."""
    if not isinstance(blob, str) or not blob.startswith("gAAAAB") or "." not in blob:
        return None
    payload, _, sig = blob[6:].rpartition(".")
    if not hmac.compare_digest(hmac.new(_SECRET, payload.encode(), hashlib.sha256).hexdigest()[:24], sig):
        return None
    try:
        out = json.loads(base64.b64decode(payload))
    except ValueError:
        return None
    return out if isinstance(out, dict) else None


def _strict_ready(schema: Any) -> bool:
    """What strict mode demands: every object closed and every property required."""
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object":
        props = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False or set(schema.get("required") or []) != set(props):
            return False
        return all(_strict_ready(v) for v in props.values())
    if schema.get("type") == "array":
        return _strict_ready(schema.get("items"))
    return True


class _Bad(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        self.status, self.message, self.param, self.code = status, message, param, code


class ResponsesRoutes:
    """Mixed into OpenAIFake: the `/v1/responses` handler and its state."""

    def _init_responses(self) -> None:
        self.responses_models = list(RESPONSES_ONLY)
        self._stored: set[str] = set()
        self._resp_ids = 0

    # --- the handler -----------------------------------------------------------------------

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        denied = self._auth_error(request)  # type: ignore[attr-defined]
        if denied is not None:
            return denied
        try:
            body = json.loads(await request.read())
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.")  # type: ignore[attr-defined]
        try:
            prompt_text = self._check(body)
        except _Bad as bad:
            return self._error(bad.status, bad.message, param=bad.param, code=bad.code)  # type: ignore[attr-defined]
        prompt_tokens = estimate_tokens(prompt_text)
        limit = body.get("max_output_tokens")
        if prompt_tokens > self.context_window:  # type: ignore[attr-defined]
            return self._error(400, "Your input exceeds the context window of this model. Please adjust your input and "  # type: ignore[attr-defined]
                               "try again.", param="input", code="context_length_exceeded")
        reply = self.next_reply() or FakeReply(text=f"You said: {self._last_user(body)[:80]}")  # type: ignore[attr-defined]
        response = self._build(body, reply, prompt_tokens, limit)
        if body.get("store", True):
            self._stored.update(i["id"] for i in response["output"] if i["type"] == "reasoning")
        if body.get("stream"):
            return await self._stream_response(request, response, reply)
        if response["status"] == "failed":
            return self._error(500, response["error"]["message"], code="server_error")  # type: ignore[attr-defined]
        return web.json_response(response, headers={"x-request-id": f"req_{response['id']}"})

    # --- validation --------------------------------------------------------------------------

    def _is_reasoning(self, model: str) -> bool:
        return bool(_REASONING.match(model))

    def _check(self, body: dict[str, Any]) -> str:
        """Reject what the real API rejects; return the prompt text (for token estimates)."""
        for key in body:
            if key not in _PARAMS:
                raise _Bad(400, f"Unknown parameter: '{key}'.", key, "unknown_parameter")
        model = str(body.get("model") or "")
        if model not in self.models and model not in self.responses_models:  # type: ignore[attr-defined]
            raise _Bad(404, f"The model `{model}` does not exist or you do not have access to it.", None, "model_not_found")
        reasoning = self._is_reasoning(model)
        if reasoning and "temperature" in body:
            raise _Bad(400, "Unsupported parameter: 'temperature' is not supported with this model.", "temperature",
                       "unsupported_parameter")
        store = body.get("store", True)
        for i, inc in enumerate(body.get("include") or []):
            if inc not in _INCLUDES:
                raise _Bad(400, f"Invalid value: '{inc}'. Supported values are: {', '.join(repr(x) for x in _INCLUDES)}.",
                           f"include[{i}]", "invalid_value")
            if inc == "reasoning.encrypted_content" and not reasoning:
                raise _Bad(400, "Encrypted content is not supported with this model.", "include", None)
        for i, tool in enumerate(body.get("tools") or []):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind == "function":
                if not tool.get("name"):
                    raise _Bad(400, f"Missing required parameter: 'tools[{i}].name'.", f"tools[{i}].name", "missing_required_parameter")
                if tool.get("strict", True) and not _strict_ready(tool.get("parameters")):
                    raise _Bad(400, f"Invalid schema for function '{tool['name']}': In context=(), 'additionalProperties' is "
                               "required to be supplied and to be false.", f"tools[{i}].parameters", "invalid_function_parameters")
            elif kind == "code_interpreter":
                if "container" not in tool:
                    raise _Bad(400, f"Missing required parameter: 'tools[{i}].container'.", f"tools[{i}].container",
                               "missing_required_parameter")
            elif kind not in ("web_search", "web_search_preview"):
                raise _Bad(400, f"Invalid value: '{kind}'.", f"tools[{i}].type", "invalid_value")
        items = body.get("input")
        if isinstance(items, str):
            return " ".join([str(body.get("instructions") or ""), items])
        if not isinstance(items, list):
            raise _Bad(400, "Invalid type for 'input': expected one of a string or array of input items.", "input", "invalid_type")
        texts = [str(body.get("instructions") or "")]
        calls: set[str] = set()
        pending: list[str] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise _Bad(400, f"Invalid type for 'input[{i}]': expected an object.", f"input[{i}]", "invalid_type")
            kind = item.get("type", "message" if "role" in item else None)
            if kind == "message":
                if pending:
                    raise _Bad(400, f"No tool output found for function call {pending[0]}.", "input", None)
                texts.append(self._check_message(item, i))
            elif kind == "function_call":
                for field in ("call_id", "name", "arguments"):
                    if not isinstance(item.get(field), str):
                        raise _Bad(400, f"Missing required parameter: 'input[{i}].{field}'.", f"input[{i}].{field}",
                                   "missing_required_parameter")
                calls.add(item["call_id"])
                pending.append(item["call_id"])
                texts.append(item["arguments"])
            elif kind == "function_call_output":
                cid = item.get("call_id")
                if cid not in calls:
                    raise _Bad(400, f"No tool call found for function call output with call_id {cid}.", "input", None)
                if cid in pending:
                    pending.remove(cid)
                texts.append(str(item.get("output") or ""))
            elif kind == "reasoning":
                self._check_reasoning(item, i, items, store)
            else:
                raise _Bad(400, f"Invalid value: '{kind}'.", f"input[{i}].type", "invalid_value")
        return " ".join(t for t in texts if t)

    def _check_message(self, item: dict[str, Any], i: int) -> str:
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise _Bad(400, f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', and 'user'.",
                       f"input[{i}].role", "invalid_value")
        content = item.get("content")
        if isinstance(content, str):
            return content
        if not isinstance(content, list):
            raise _Bad(400, f"Invalid type for 'input[{i}].content'.", f"input[{i}].content", "invalid_type")
        allowed = ("output_text", "refusal") if role == "assistant" else ("input_text", "input_image", "input_file")
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in allowed:
                raise _Bad(400, f"Invalid value: '{kind}'. Supported values are: {', '.join(repr(a) for a in allowed)}.",
                           f"input[{i}].content[{j}].type", "invalid_value")
            if kind == "input_image":
                url = part.get("image_url")
                if not part.get("file_id") and not (isinstance(url, str) and url.startswith(("data:image/", "http"))):
                    raise _Bad(400, f"Invalid 'input[{i}].content[{j}].image_url'. Expected a base64-encoded data URL "
                               "with an image MIME type or a valid URL.", f"input[{i}].content[{j}].image_url", "invalid_value")
                texts.append("x" * 340)
            else:
                texts.append(str(part.get("text") or ""))
        return " ".join(texts)

    def _check_reasoning(self, item: dict[str, Any], i: int, items: list[Any], store: bool) -> None:
        encrypted = item.get("encrypted_content")
        if encrypted is not None:
            found = verify_encrypted(encrypted)
            if found is None:
                raise _Bad(400, f"The encrypted content for item {item.get('id') or 'rs_unknown'} could not be verified.",
                           None, "invalid_encrypted_content")
            item_id = found["id"]
        else:
            item_id = str(item.get("id") or "")
            if not store or item_id not in self._stored:
                extra = (" Items are not persisted when `store` is set to false. Try again with `store` set to true, or "
                         "remove this item from your input.") if not store else ""
                raise _Bad(404, f"Item with id '{item_id}' not found.{extra}", "input", None)
        following = items[i + 1] if i + 1 < len(items) else None
        if not isinstance(following, dict) or following.get("type") == "reasoning":
            raise _Bad(400, f"Item '{item_id}' of type 'reasoning' was provided without its required following item.",
                       "input", None)

    @staticmethod
    def _last_user(body: dict[str, Any]) -> str:
        items = body.get("input")
        if isinstance(items, str):
            return items
        for item in reversed(items or []):
            if isinstance(item, dict) and item.get("role") == "user":
                c = item.get("content")
                return c if isinstance(c, str) else " ".join(p.get("text", "") for p in c if isinstance(p, dict))
        return ""

    # --- the reply -----------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        self._resp_ids += 1
        return f"{prefix}_{hashlib.sha256(f'{prefix}{self._resp_ids}'.encode()).hexdigest()[:40]}"

    def _build(self, body: dict[str, Any], reply: FakeReply, prompt_tokens: int, limit: Any) -> dict[str, Any]:
        model = str(body["model"])
        include = set(body.get("include") or [])
        tools = {t.get("type") for t in body.get("tools") or [] if isinstance(t, dict)}
        wants_summary = bool((body.get("reasoning") or {}).get("summary"))
        output: list[dict[str, Any]] = []
        reasoning_tokens = 0
        if self._is_reasoning(model):
            rid = self._new_id("rs")
            summary = reply.reasoning if wants_summary else ""
            item: dict[str, Any] = {"id": rid, "type": "reasoning",
                                    "summary": [{"type": "summary_text", "text": summary}] if summary else []}
            if "reasoning.encrypted_content" in include:
                item["encrypted_content"] = _encrypt(rid, model, reply.reasoning)
            output.append(item)
            reasoning_tokens = reply.reasoning_tokens if reply.reasoning_tokens is not None else max(
                8, estimate_tokens(reply.reasoning))
        annotations: list[dict[str, Any]] = []
        searched = 0
        if tools & {"web_search", "web_search_preview"} and reply.search_query:
            action: dict[str, Any] = {"type": "search", "query": reply.search_query}
            if "web_search_call.action.sources" in include:
                action["sources"] = [{"type": "url", "url": url} for url, _ in reply.sources]
            output.append({"id": self._new_id("ws"), "type": "web_search_call", "status": "completed", "action": action})
            searched = 1
        if "code_interpreter" in tools and reply.code:
            outputs = [{"type": "logs", "logs": reply.code_output}] if "code_interpreter_call.outputs" in include else None
            output.append({"id": self._new_id("ci"), "type": "code_interpreter_call", "status": "completed",
                           "code": reply.code, "container_id": "cntr_fake", "outputs": outputs})
        text = reply.text
        status, incomplete = "completed", None
        if reply.stop_reason == "content_filter":
            status, incomplete = "incomplete", {"reason": "content_filter"}
        elif isinstance(limit, int) and estimate_tokens(text) + reasoning_tokens > limit:
            text = text[: max(0, limit - reasoning_tokens) * 4]
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        if searched:
            annotations = [{"type": "url_citation", "start_index": 0, "end_index": len(text), "url": url, "title": title}
                           for url, title in reply.sources]
        if text or not reply.tool_calls:
            output.append({"id": self._new_id("msg"), "type": "message", "status": "completed", "role": "assistant",
                           "content": [{"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}]})
        if status == "completed":
            for call in reply.tool_calls:
                output.append({"id": self._new_id("fc"), "type": "function_call", "status": "completed",
                               "call_id": call.id, "name": call.name, "arguments": json.dumps(call.arguments)})
        out_tokens = reply.output_tokens if reply.output_tokens is not None else (
            estimate_tokens(text + "".join(json.dumps(c.arguments) for c in reply.tool_calls)) + reasoning_tokens)
        cached = reply.cache_read_tokens or 0
        uncached = reply.input_tokens if reply.input_tokens is not None else prompt_tokens
        usage = {
            "input_tokens": uncached + cached, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": out_tokens, "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": uncached + cached + out_tokens,
        }
        error = None
        if reply.stop_reason == "failed":
            status, error = "failed", {"code": "server_error", "message": "The model failed to generate a response."}
        return {
            "id": self._new_id("resp"), "object": "response", "created_at": int(time.time()), "status": status,
            "background": False, "error": error, "incomplete_details": incomplete,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": model, "output": output, "parallel_tool_calls": True, "previous_response_id": None,
            "reasoning": {"effort": "medium" if self._is_reasoning(model) else None, "summary": None},
            "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [], "top_p": 1.0, "truncation": "disabled",
            "usage": usage if status != "failed" else None, "user": None, "metadata": {},
        }

    # --- the stream ----------------------------------------------------------------------------

    def _events(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        """Every SSE event of one response, in the documented order."""
        head = {**response, "status": "in_progress", "output": [], "usage": None, "error": None, "incomplete_details": None}
        events: list[dict[str, Any]] = [{"type": "response.created", "response": head},
                                        {"type": "response.in_progress", "response": head}]
        for index, item in enumerate(response["output"]):
            kind, iid = item["type"], item["id"]
            at = {"item_id": iid, "output_index": index}
            if kind == "reasoning":
                events.append({"type": "response.output_item.added", "output_index": index,
                               "item": {"id": iid, "type": "reasoning", "summary": []}})
                for s, part in enumerate(item["summary"]):
                    events.append({"type": "response.reasoning_summary_part.added", **at, "summary_index": s,
                                   "part": {"type": "summary_text", "text": ""}})
                    events += [{"type": "response.reasoning_summary_text.delta", **at, "summary_index": s, "delta": p}
                               for p in _pieces(part["text"])]
                    events.append({"type": "response.reasoning_summary_text.done", **at, "summary_index": s, "text": part["text"]})
                    events.append({"type": "response.reasoning_summary_part.done", **at, "summary_index": s, "part": part})
            elif kind == "message":
                events.append({"type": "response.output_item.added", "output_index": index,
                               "item": {**item, "status": "in_progress", "content": []}})
                part = item["content"][0]
                at_part = {**at, "content_index": 0}
                events.append({"type": "response.content_part.added", **at_part,
                               "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
                events += [{"type": "response.output_text.delta", **at_part, "delta": p, "logprobs": []}
                           for p in _pieces(part["text"])]
                events += [{"type": "response.output_text.annotation.added", **at_part, "annotation_index": a, "annotation": ann}
                           for a, ann in enumerate(part["annotations"])]
                events.append({"type": "response.output_text.done", **at_part, "text": part["text"], "logprobs": []})
                events.append({"type": "response.content_part.done", **at_part, "part": part})
            elif kind == "function_call":
                events.append({"type": "response.output_item.added", "output_index": index,
                               "item": {**item, "status": "in_progress", "arguments": ""}})
                events += [{"type": "response.function_call_arguments.delta", **at, "delta": p}
                           for p in _pieces(item["arguments"], 3)]
                events.append({"type": "response.function_call_arguments.done", **at, "arguments": item["arguments"]})
            else:  # web_search_call, code_interpreter_call
                events.append({"type": "response.output_item.added", "output_index": index,
                               "item": {"id": iid, "type": kind, "status": "in_progress"}})
                name = "web_search_call" if kind == "web_search_call" else "code_interpreter_call"
                for phase in ("in_progress", "searching" if kind == "web_search_call" else "interpreting", "completed"):
                    events.append({"type": f"response.{name}.{phase}", **at})
            events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        final = {"completed": "response.completed", "incomplete": "response.incomplete", "failed": "response.failed"}
        events.append({"type": final[response["status"]], "response": response})
        for n, ev in enumerate(events):
            ev["sequence_number"] = n
        return events

    async def _stream_response(self, request: web.Request, response: dict[str, Any], reply: FakeReply) -> web.StreamResponse:
        events = self._events(response)
        resp = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
            "x-request-id": f"req_{response['id']}",
        })
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for n, ev in enumerate(events):
            if reply.break_after_events is not None and n >= reply.break_after_events:
                await asyncio.sleep(0.01)
                assert request.transport is not None
                request.transport.close()
                return resp
            if reply.error_after_events is not None and n >= reply.error_after_events:
                err = (self.stream_error or {}).get("error") or {}  # type: ignore[attr-defined]
                ev = {"type": "error", "code": err.get("code") or err.get("type"), "message": err.get("message"),
                      "param": None, "sequence_number": n}
                await resp.write(f"event: error\ndata: {json.dumps(ev)}\n\n".encode())
                break
            frame = f"event: {ev['type']}\ndata: {json.dumps(ev, separators=(',', ':'))}\n\n".encode()
            if self.write_mode == "split":  # type: ignore[attr-defined]
                for piece in (frame[:5], frame[5:len(frame) // 2], frame[len(frame) // 2:]):
                    await resp.write(piece)
            else:
                await resp.write(frame)
        await resp.write_eof()
        return resp


def _pieces(text: str, n: int | None = None) -> list[str]:
    """Cut text into stream pieces: `n` roughly equal ones, or about one word each."""
    if not text:
        return []
    if n is not None:
        size = max(1, -(-len(text) // n))
        return [text[i:i + size] for i in range(0, len(text), size)]
    return re.findall(r"\S*\s*", text)[:-1] or [text]
