"""What an agent is: `AgentSpec`, its validation, and the resolution of its model and tools.

An agent is a named assistant: a system prompt, an optional model of its own (empty or
"(default)" inherits the `model` setting), the names of its tools (or ["all"]), and
limits. The same spec is stored (store.py), exported as JSON, edited on the Agents page
and built in code (`synapse.Agent`).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import SynapseError

__all__ = [
    "DEFAULT_AGENT_NAME",
    "DEFAULT_TOOLS",
    "AgentError",
    "AgentSpec",
    "new_agent_id",
    "resolve_model",
]

DEFAULT_AGENT_NAME = "Assistant"
#: The tools of the agent a fresh data folder starts with (http_get is off by default).
DEFAULT_TOOLS: tuple[str, ...] = ("current_time", "calculator")
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer clearly and concisely; use Markdown when it helps."
RESPONSE_CACHE_MODES = ("off", "exact", "semantic")
_INHERIT = ("", "(default)", "default")
_MODEL_NAME = re.compile(r"^[^\s]{1,255}$")
MAX_NAME = 100
MAX_SYSTEM = 200_000


class AgentError(SynapseError):
    """An agent's fields are invalid, or no agent has that name or id."""

    kind = "agent"

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def new_agent_id() -> str:
    return "agent-" + secrets.token_hex(4)


@dataclass(slots=True)
class AgentSpec:
    """An agent's stored fields. Times are Unix seconds."""

    name: str
    system_prompt: str = ""
    description: str = ""
    #: "" inherits the `model` setting.
    model: str = ""
    max_turns: int = 30
    tools: list[str] = field(default_factory=list)
    temperature: float | None = None
    response_cache: str = "off"
    max_total_cost_usd: float | None = None
    memory: bool = False
    #: Anthropic's memory tool (`memory_20250818`: files in a /memories folder of its own)
    #: when the agent answers with a Claude model over the Anthropic API.
    memory_tool: bool = False
    #: Provider request fields merged into every call (e.g. {"thinking": {...}} for Claude).
    extra: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_agent_id)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"model": self.model or "(default)"}

    def export(self) -> dict[str, Any]:
        """The portable form: everything but id and times."""
        d = self.as_dict()
        for key in ("id", "created_at", "updated_at"):
            d.pop(key)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, partial_of: "AgentSpec | None" = None) -> "AgentSpec":
        """Validated spec from user input (page form, JSON import, CLI flags).

        With `partial_of`, missing keys keep that agent's values (an edit).
        """
        if not isinstance(data, Mapping):
            raise AgentError("an agent must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            raise AgentError(f"agents have no field {unknown[0]!r}; fields: {', '.join(sorted(known - {'created_at', 'updated_at'}))}", unknown[0])
        base = partial_of.as_dict() if partial_of is not None else {}
        merged = {**base, **{k: v for k, v in data.items() if k not in ("id", "created_at", "updated_at")}}
        if "name" not in merged:
            raise AgentError("an agent needs a name", "name")
        spec = cls(name=_name(merged["name"]))
        if partial_of is not None:
            spec.id, spec.created_at = partial_of.id, partial_of.created_at
        elif isinstance(data.get("id"), str) and re.fullmatch(r"agent-[a-z0-9-]{1,40}", data["id"]):
            spec.id = data["id"]
        spec.description = _text(merged.get("description"), "description", 2000)
        spec.system_prompt = _text(merged.get("system_prompt"), "system_prompt", MAX_SYSTEM)
        spec.model = _model(merged.get("model"))
        spec.max_turns = _int(merged.get("max_turns", 30), "max_turns", 1, 200)
        spec.tools = _tools(merged.get("tools", []))
        spec.temperature = _number(merged.get("temperature"), "temperature", 0.0, 2.0)
        spec.response_cache = _cache(merged.get("response_cache"))
        spec.max_total_cost_usd = _number(merged.get("max_total_cost_usd"), "max_total_cost_usd", 0.0, 1e6)
        spec.memory = _bool(merged.get("memory", False), "memory")
        spec.memory_tool = _bool(merged.get("memory_tool", False), "memory_tool")
        extra = merged.get("extra") or {}
        if not isinstance(extra, Mapping):
            raise AgentError("extra must be a JSON object of provider request fields", "extra")
        spec.extra = dict(extra)
        return spec


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AgentError("the agent's name is empty: give it a name such as Researcher", "name")
    name = " ".join(value.split())
    if len(name) > MAX_NAME:
        raise AgentError(f"the agent's name is too long (at most {MAX_NAME} characters)", "name")
    if name.startswith("agent-"):
        raise AgentError("a name cannot start with 'agent-' (that is how ids start)", "name")
    return name


def _text(value: Any, key: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AgentError(f"{key} must be text", key)
    if len(value) > limit:
        raise AgentError(f"{key} is too long (at most {limit:,} characters)", key)
    return value


def _model(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AgentError("model must be a model name such as claude-sonnet-4-5, or (default)", "model")
    value = value.strip()
    if value.lower() in _INHERIT:
        return ""
    if not _MODEL_NAME.match(value):
        raise AgentError("a model name has no spaces, e.g. claude-sonnet-4-5 or oaic.meta-llama/llama-3-70b-instruct", "model")
    return value


def _int(value: Any, key: str, low: int, high: int) -> int:
    try:
        number = int(value)
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
    except (TypeError, ValueError):
        raise AgentError(f"{key} must be a whole number from {low} to {high}", key) from None
    if not low <= number <= high:
        raise AgentError(f"{key} must be from {low} to {high}", key)
    return number


def _number(value: Any, key: str, low: float, high: float) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise AgentError(f"{key} must be a number (or empty)", key) from None
    if not low <= number <= high:
        raise AgentError(f"{key} must be from {low:g} to {high:g}", key)
    return number


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("on", "true", "yes", "1", "off", "false", "no", "0"):
        return value.strip().lower() in ("on", "true", "yes", "1")
    raise AgentError(f"{key} must be on or off", key)


def _cache(value: Any) -> str:
    if value in (None, "", False):
        return "off"
    if value is True:
        return "exact"
    if value not in RESPONSE_CACHE_MODES:
        raise AgentError(f"response_cache must be one of: {', '.join(RESPONSE_CACHE_MODES)}", "response_cache")
    return str(value)


def _tools(value: Any) -> list[str]:
    from .builtin_tools import BUILTIN_NAMES

    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value) if v]
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise AgentError("tools must be a list of tool names, or [\"all\"]", "tools")
    names: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise AgentError("tools must be a list of tool names", "tools")
        if item not in names:
            names.append(item.strip())
    if "all" in names:
        return ["all"]
    unknown = [n for n in names if n not in BUILTIN_NAMES]
    if unknown:
        raise AgentError(
            f"unknown tool {unknown[0]!r}: the tools are {', '.join(BUILTIN_NAMES)} (or \"all\")", "tools"
        )
    return names


def resolve_model(override: str | None, *models: str | None) -> str | None:
    """The first model that is set: call override, then session, agent, ...; None: the `model` setting."""
    for m in (override, *models):
        if m and m.strip() and m.strip().lower() not in _INHERIT:
            return m.strip()
    return None
