"""`synapse.Agent`: an agent in code, stored or not.

    agent = synapse.Agent(name="helper", system="Be brief.", model="claude-sonnet-4-5", tools=[weather])
    result = agent.run("Weather in Paris?")            # one turn, tools included
    result.text, result.tool_calls, result.cost_usd, result.session_id
    agent.run("And tomorrow?", session_id=result.session_id)   # the same conversation

    async for event in agent.astream("Hi"):             # the turn's events (synapse.agents.events)
        ...

`Agent.load("Researcher")` uses a stored agent (its built-in tools included). Tools are
Python functions (sync or async) whose schemas come from their type hints and docstrings,
or names of built-in tools ("calculator"). Every model call goes through
`synapse.client`, so prompt caching, the usage ledger, limits and retries apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..types import Message, Part, Usage
from .events import TurnDone, TurnError
from .spec import AgentError, AgentSpec
from .tools import FunctionTool, function_tool

__all__ = ["Agent", "AgentResult", "resolve_tools"]


@dataclass(slots=True)
class AgentResult:
    """What one turn did."""

    text: str
    tool_calls: list[dict[str, Any]]
    usage: Usage
    cost_usd: float | None
    session_id: str
    stop_reason: str
    model: str = ""
    #: Set when the turn stopped early for a reason the model did not choose (max_turns, an error).
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"response": self.text, "session_id": self.session_id, "model": self.model,
                "usage": self.usage.as_dict(), "cost_usd": self.cost_usd, "tool_calls": self.tool_calls,
                "stop_reason": self.stop_reason, "message": self.message}


def resolve_tools(names: Sequence[str], extra: Sequence[Any] = ()) -> dict[str, FunctionTool]:
    """Built-in tools by name (["all"]: every one) plus Python functions / FunctionTools."""
    from .builtin_tools import builtin_tools

    builtins = builtin_tools()
    out: dict[str, FunctionTool] = {}
    for name in names:
        if name == "all":
            out.update(builtins)
        elif name in builtins:
            out[name] = builtins[name]
        else:
            raise AgentError(f"unknown tool {name!r}: the built-in tools are {', '.join(builtins)}", "tools")
    for item in extra:
        if isinstance(item, str):
            out.update(resolve_tools([item]))
            continue
        tool = function_tool(item)
        out[tool.name] = tool
    return out


class Agent:
    """A named assistant: system prompt, model, tools. See the module docstring."""

    def __init__(
        self,
        name: str = "agent",
        system: str = "",
        model: str | None = None,
        tools: Sequence[Callable[..., Any] | FunctionTool | str] = (),
        *,
        max_turns: int = 30,
        temperature: float | None = None,
        response_cache: str = "off",
        max_total_cost_usd: float | None = None,
        extra: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        names = [t for t in tools if isinstance(t, str)]
        self.spec = AgentSpec.from_dict({
            "name": name, "system_prompt": system, "model": model or "", "max_turns": max_turns, "tools": names,
            "temperature": temperature, "response_cache": response_cache, "max_total_cost_usd": max_total_cost_usd,
            "extra": dict(extra or {}),
        })
        self.tools = resolve_tools(names, [t for t in tools if not isinstance(t, str)])
        self.settings = settings
        self.stored = False

    @classmethod
    def load(cls, ref: str, *, settings: Mapping[str, Any] | None = None,
             tools: Sequence[Callable[..., Any] | FunctionTool] = ()) -> "Agent":
        """A stored agent by id or name (case-insensitive); `tools` adds Python tools to it."""
        from .store import AgentStore

        spec = AgentStore(settings).get(ref)
        return cls.from_spec(spec, settings=settings, tools=tools, stored=True)

    @classmethod
    def from_spec(cls, spec: AgentSpec, *, settings: Mapping[str, Any] | None = None,
                  tools: Sequence[Callable[..., Any] | FunctionTool] = (), stored: bool = True) -> "Agent":
        agent = cls.__new__(cls)
        agent.spec = spec
        agent.tools = resolve_tools(spec.tools, tools)
        agent.settings = settings
        agent.stored = stored
        return agent

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"Agent(name={self.spec.name!r}, model={self.spec.model or '(default)'!r}, tools={list(self.tools)!r})"

    async def astream(self, prompt: str | Message | Sequence[Part], *, session_id: str | None = None,
                      model: str | None = None, stream: bool = True) -> AsyncIterator[Any]:
        """One turn's events (synapse.agents.events), ending with TurnDone or TurnError."""
        from .loop import run_turn

        async for event in run_turn(self.spec, self.tools, prompt, session_id=session_id, model=model,
                                    stream=stream, settings=self.settings, stored_agent=self.stored):
            yield event

    async def arun(self, prompt: str | Message | Sequence[Part], *, session_id: str | None = None,
                   model: str | None = None) -> AgentResult:
        """One turn, not streamed. A provider or limit error raises; a tool error does not."""
        from ..errors import SynapseError

        done: TurnDone | None = None
        async for event in self.astream(prompt, session_id=session_id, model=model, stream=False):
            if isinstance(event, TurnDone):
                done = event
            elif isinstance(event, TurnError):
                error = SynapseError(event.message)
                error.kind = event.kind
                raise error
        if done is None:  # pragma: no cover - run_turn always ends with done or error
            raise SynapseError("the turn ended without a result")
        return AgentResult(done.text, done.tool_calls, done.usage, done.cost_usd, done.session_id, done.stop_reason,
                           done.model, done.message)

    def run(self, prompt: str | Message | Sequence[Part], *, session_id: str | None = None,
            model: str | None = None) -> AgentResult:
        """`arun` for synchronous code."""
        from .._loop import run

        return run(self.arun(prompt, session_id=session_id, model=model))


