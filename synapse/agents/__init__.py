"""Agents, chat sessions and the turn loop: what a person talks to.

    spec.py           AgentSpec: an agent's fields, validated; model resolution
    store.py          the agents table (CRUD, import / export, the default "Assistant")
    sessions.py       chat sessions and their exact stored history
    serialize.py      canonical messages <-> JSON, keyed by each part's `type`
    tools.py          Python functions as tools (schemas from hints and docstrings)
    builtin_tools.py  current_time, calculator, http_get
    loop.py           one turn: the tool loop and its event stream (events.py)
    compact.py        keep long sessions inside the context window
    hooks.py          per-turn hooks (memory joins here)
    agent.py          the public `synapse.Agent`
    api.py, cli.py    REST /api/v1 and `synapse agents ...` / `synapse chat --agent`

Nothing here talks to a provider except through `synapse.client`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Agent", "AgentResult", "AgentSpec"]

if TYPE_CHECKING:
    from .agent import Agent, AgentResult
    from .spec import AgentSpec


def __getattr__(name: str) -> Any:
    if name in ("Agent", "AgentResult"):
        from . import agent

        return getattr(agent, name)
    if name == "AgentSpec":
        from .spec import AgentSpec

        return AgentSpec
    raise AttributeError(f"module 'synapse.agents' has no attribute {name!r}")
