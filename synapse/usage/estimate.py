"""Usage of a call cut short before the provider said what it used: the missing numbers, estimated.

OpenAI-protocol providers, Ollama and Bedrock report a stream's usage only at its end;
Anthropic reports the input at `message_start` and the output at the end; Gemini with
every chunk. A call cancelled (a page's Stop, a gateway client gone, `asyncio.wait_for`),
timed out, or broken midway therefore knows part of its usage or none of it, although
the provider billed the prompt and every token it sent. `fill` completes it:

* input, when the provider reported no prompt tokens: the request's prompt at
  CHARS_PER_TOKEN characters a token (`caching.prompt_chars`, the count the cost limit
  and the agents' context budget use), all of it as uncached input (the dearest case);
* output, when it reported no output tokens: what was streamed so far (text, tool-call
  arguments, reasoning) at the same rate. Reasoning a provider keeps hidden (OpenAI's
  o-series) is not streamed, so it is not counted.

A number the provider reported is never replaced. The ledger row is priced as usual and
marked `estimated`; a completed call is never estimated, and a call that never reached
the provider gets no estimate (see `client._reached`). Only the cut-short path runs this.
"""

from __future__ import annotations

from collections.abc import Callable

from ..caching import tokens_for_chars
from ..types import Usage

__all__ = ["fill"]


def fill(reported: Usage | None, prompt_chars: Callable[[], int],
         streamed: tuple[int, int] | None) -> tuple[Usage, bool]:
    """`reported` with what is missing estimated; True when a number was estimated.

    `prompt_chars` counts the request (called only when the input is missing);
    `streamed` is (output characters, the reasoning part of them) seen so far, or None
    when nothing can be known about the output.
    """
    usage = reported if reported is not None else Usage()
    estimated = False
    if usage.prompt_tokens == 0:
        usage.input_tokens = tokens_for_chars(prompt_chars())
        estimated = True
    if usage.output_tokens == 0 and streamed is not None and streamed[0] > 0:
        out, reasoning = streamed
        usage.output_tokens = tokens_for_chars(out)
        if usage.reasoning_tokens == 0:
            usage.reasoning_tokens = min(usage.output_tokens, tokens_for_chars(reasoning))
        estimated = True
    return usage, estimated
