"""Cost limits: `max_total_cost_usd` on a session or an agent run (a CallContext).

Before a provider call, the spend recorded so far (the ledger's sum for the
context's session, or what this CallContext has spent when it has no session) plus
the least this call can cost (its prompt, estimated at ~4 characters a token, at the
model's input price) is compared with the limit; if it would pass it, the call is
refused with CostLimitError saying the limit and the spend. Runs only when a limit is
set, off the event loop (it waits for queued records to be written).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import CostLimitError

if TYPE_CHECKING:
    from ..client import CallContext
    from ..types import Request

__all__ = ["check_cost_limit", "estimate_prompt_cost"]


def estimate_prompt_cost(provider: str, upstream_model: str, req: "Request") -> float:
    """What this request's prompt alone costs at the input price (0 when unknown)."""
    from ..caching import CHARS_PER_TOKEN, prompt_chars
    from ..types import Usage
    from .prices import price

    chars = prompt_chars(req.messages, req.system, req.tools)
    p = price(provider, upstream_model, Usage(input_tokens=chars // CHARS_PER_TOKEN))
    return p.cost_usd if p is not None else 0.0


def check_cost_limit(
    limit: float,
    context: "CallContext | None",
    settings: Mapping[str, Any] | None,
    provider: str,
    upstream_model: str,
    req: "Request",
) -> None:
    from .ledger import spent

    spend = spent(context, settings)
    who = "this run"
    if context is not None and context.session:
        who = f"session {context.session!r}"
    elif context is not None and context.agent:
        who = f"this run of agent {context.agent!r}"
    if spend >= limit:
        raise CostLimitError(
            f"cost limit reached: {who} has spent ${spend:.4f} of its ${limit:.4f} limit "
            "(max_total_cost_usd); raise the limit or start a new session"
        )
    estimate = estimate_prompt_cost(provider, upstream_model, req)
    if spend + estimate > limit:
        raise CostLimitError(
            f"cost limit: {who} has spent ${spend:.4f} of its ${limit:.4f} limit (max_total_cost_usd), "
            f"and this call's prompt alone would cost about ${estimate:.4f} more; "
            "raise the limit or start a new session"
        )
