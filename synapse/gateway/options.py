"""Options one API has and the target protocol spells differently (top_p, thinking, JSON mode).

The shapes fill `Options` from the caller's request; `extra_for` turns them into the
target protocol's own body fields (`Request.extra`, merged last by the adapter).
Only the canonical path uses this: a same-protocol relay sends the caller's fields as is.
Options a target has no equivalent for are dropped, as a provider drops unknown fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["EFFORT_BUDGET", "Options", "extra_for"]

#: reasoning_effort -> thinking budget tokens (Anthropic, Gemini), and back.
EFFORT_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}


@dataclass(slots=True)
class Options:
    top_p: float | None = None
    top_k: int | None = None
    #: Reasoning asked for, as an OpenAI effort word or an Anthropic budget (either may be set).
    effort: str | None = None
    budget: int | None = None
    json: bool = False
    json_schema: dict[str, Any] | None = None
    user: str | None = None

    def thinking_budget(self) -> int | None:
        if self.budget is not None:
            return self.budget
        return EFFORT_BUDGET.get(self.effort) if self.effort else None

    def effort_word(self) -> str | None:
        if self.effort:
            return self.effort
        if self.budget is None:
            return None
        return "low" if self.budget < 4096 else "medium" if self.budget < 16384 else "high"


def extra_for(protocol: str, model: str, opts: Options, max_tokens: int | None) -> dict[str, Any]:
    """`Request.extra` for `protocol` (the provider's wire names)."""
    if protocol == "anthropic":
        return _anthropic(opts, max_tokens)
    if protocol == "gemini":
        gen: dict[str, Any] = {}
        if opts.top_p is not None:
            gen["topP"] = opts.top_p
        if opts.top_k is not None:
            gen["topK"] = opts.top_k
        if opts.json or opts.json_schema is not None:
            gen["responseMimeType"] = "application/json"
        if opts.json_schema is not None:
            gen["responseJsonSchema"] = opts.json_schema
        budget = opts.thinking_budget()
        if budget is not None:
            gen["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": True}
        return {"generationConfig": gen} if gen else {}
    if protocol == "bedrock":
        return {"inferenceConfig": {"topP": opts.top_p}} if opts.top_p is not None else {}
    if protocol == "ollama":
        out: dict[str, Any] = {}
        options = {k: v for k, v in (("top_p", opts.top_p), ("top_k", opts.top_k)) if v is not None}
        if options:
            out["options"] = options
        if opts.json_schema is not None:
            out["format"] = opts.json_schema
        elif opts.json:
            out["format"] = "json"
        if opts.thinking_budget() is not None:
            out["think"] = True
        return out
    if protocol == "openai":
        from ..providers.openai import _REASONING_MODEL

        out = {}
        if opts.top_p is not None:
            out["top_p"] = opts.top_p
        effort = opts.effort_word()
        if effort and _REASONING_MODEL.match(model):
            out["reasoning_effort"] = effort
        if opts.user:
            out["user"] = opts.user
        return out
    return {}


def _anthropic(opts: Options, max_tokens: int | None) -> dict[str, Any]:
    from ..providers.anthropic import DEFAULT_MAX_TOKENS

    out: dict[str, Any] = {}
    if opts.top_p is not None:
        out["top_p"] = opts.top_p
    if opts.top_k is not None:
        out["top_k"] = opts.top_k
    budget = opts.thinking_budget()
    if budget is not None:
        limit = max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS
        budget = min(budget, limit - 1)
        if budget >= 1024:  # Anthropic's smallest thinking budget; below it, no thinking
            out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if opts.user:
        out["metadata"] = {"user_id": opts.user}
    return out
