"""A long-lived background event loop for the synchronous API.

Sync calls submit coroutines to one loop on a daemon thread, so the pooled HTTP
session survives between calls instead of being rebuilt each time.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _get_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            # The usage ledger starts on the loop's thread, where no signal handler can be
            # installed: install its SIGTERM flush from the caller's (main) thread instead.
            from .usage.ledger import install_sigterm_handler

            install_sigterm_handler()
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="synapse-loop", daemon=True)
            thread.start()
            _loop = loop
            atexit.register(_shutdown, loop, thread)
        return _loop


def _shutdown(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """At exit: close the pooled connections, stop the loop, and close it (its self-pipe
    would otherwise be reported as an unclosed socket and event loop)."""
    from .providers.transport import close_session

    if loop.is_closed():
        return
    try:
        asyncio.run_coroutine_threadsafe(close_session(), loop).result(timeout=5)
    except Exception:
        pass
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    if not thread.is_alive():
        loop.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the background loop and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coro, _get_loop()).result()


def iterate(agen: AsyncIterator[T]) -> Iterator[T]:
    """Drive an async iterator from synchronous code, one item at a time."""
    loop = _get_loop()
    try:
        while True:
            try:
                step: Coroutine[Any, Any, T] = agen.__anext__()  # type: ignore[assignment]
                yield asyncio.run_coroutine_threadsafe(step, loop).result()
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            try:
                asyncio.run_coroutine_threadsafe(aclose(), loop).result(timeout=5)
            except Exception:
                pass
