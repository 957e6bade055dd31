"""The garbage collector of a `synapse serve` process, tuned for serving.

Measured on the gateway (bench/RESULTS.md): with CPython's defaults, cyclic garbage
collection took about a third of a relayed request's CPU. Two causes:

* every full collection walks every object the process holds, and a server holds a
  lot that never dies: FastAPI, SQLAlchemy, aiohttp and the genai-prices table;
* a young-generation collection runs every 700 allocations, and with 64 requests in
  flight it promotes their short-lived objects, which makes the full collections come
  sooner.

So `tune()` (at start) collects the young generation ten times less often, and
`settle()` (after the warm-up has imported and loaded what serving needs) moves every
object there is then into the permanent generation (`gc.freeze()`), which collections
skip. Garbage made later is still collected; only what existed at warm-up is never
scanned again. Only for processes that do nothing but serve: a library must not
change its host program's collector.
"""

from __future__ import annotations

import gc

__all__ = ["GEN0_THRESHOLD", "settle", "tune"]

#: Allocations between young-generation collections (CPython's default: 700).
GEN0_THRESHOLD = 7000


def tune() -> None:
    """Collect the young generation less often (older generations keep their ratios)."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


def settle() -> None:
    """Keep every object alive now out of every later collection. No collection first:
    after the warm-up it found about 20 unreachable objects and held the GIL for 60-70 ms,
    which a request arriving then would wait for."""
    gc.freeze()
