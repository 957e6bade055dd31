"""Synapse: connect any LLM provider once, use every model through one interface.

    >>> import synapse
    >>> reply = synapse.chat("claude-sonnet-4-5", "Say hi")
    >>> reply.text, reply.usage.cache_read_tokens

Provider code is imported lazily, on first use: `import synapse` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConnectionFailedError,
    ContextTooLongError,
    CostLimitError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    ProviderNotInstalledError,
    ProviderTimeoutError,
    RateLimitError,
    SettingsError,
    SynapseError,
    UnknownModelError,
    UpstreamUnavailableError,
)

__version__ = "0.1.0"

__all__ = [
    "SYNAPSE_VOLATILE",
    "Agent",
    "AuthenticationError",
    "BadRequestError",
    "CallContext",
    "ConfigurationError",
    "ConnectionFailedError",
    "ContextTooLongError",
    "CostLimitError",
    "Message",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProviderError",
    "ProviderNotInstalledError",
    "ProviderTimeoutError",
    "RateLimitError",
    "Response",
    "SettingsError",
    "SynapseError",
    "Tool",
    "ToolCall",
    "UnknownModelError",
    "UpstreamUnavailableError",
    "Usage",
    "__version__",
    "achat",
    "aclose",
    "aembed",
    "astream",
    "chat",
    "closing",
    "embed",
    "server_tool",
    "stream",
]

_LAZY = {
    "achat": "client", "aembed": "client", "astream": "client", "aclose": "client", "closing": "client",
    "chat": "client", "embed": "client", "stream": "client", "CallContext": "client",
    "SYNAPSE_VOLATILE": "caching",
    "Agent": "agents.agent",
    "server_tool": "coerce",
    "Message": "types", "Response": "types", "Tool": "types", "ToolCall": "types", "Usage": "types",
}

if TYPE_CHECKING:
    from .agents.agent import Agent
    from .caching import SYNAPSE_VOLATILE
    from .client import CallContext, achat, aclose, aembed, astream, chat, closing, embed, stream
    from .coerce import server_tool
    from .types import Message, Response, Tool, ToolCall, Usage


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'synapse' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
