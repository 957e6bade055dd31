"""Per-key rate limits and budgets for the /v1 gateway, atomic across instances (Redis).

Rate limit (`synapse keys create --rpm N`): requests a minute, counted in a one-minute
window per key (`synapse:rpm:<key>:<minute>`, INCR + expiry). Past N, a 429 with the
seconds to the next window.

Budget (`--budget-usd X`): Redis holds the key's spend (`synapse:spent:<key>`, seeded
from the usage ledger's sum the first time, then kept by the gateway as each request's
calls are priced) and the requests in flight (`synapse:inflight:<key>`, a sorted set of
leases that expire, so an instance killed mid-call does not hold a lease forever). The
cost of a call is only known when it ends, so admission reserves: one Lua script, atomic
across instances, admits a request while

    spent + (in flight + 1) x (the most one request of this key has cost) <= budget

and otherwise lets it wait for the requests in flight (at most `QUEUE_SECONDS`, then a
429); until one request has been priced, a budgeted key runs one request at a time. So
two instances cannot both spend the last dollar, and the spend passes the budget by at
most one request (when a request costs more than any before it). When a request ends
its calls are priced (the ledger's own pricing, `ledger.row_for`) and the spend is added
as its lease is released, in one script.

Redis down: no lease; the gateway falls back to its per-process reckoning from the ledger
(keys.py), and rate limits to a per-instance window.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .shared import Link, RedisDown

if TYPE_CHECKING:
    from ..client import CallContext, CallRecord
    from ..gateway.keys import KeyInfo

__all__ = ["Lease", "Limited", "admit", "local_rpm", "observe"]

#: Seconds a budgeted request may wait for room in the budget before a 429.
QUEUE_SECONDS = 30.0
#: Seconds a lease holds a reservation at most (a request that outlives it is still priced).
LEASE_SECONDS = 600.0
#: Seconds the spend counter lives before it is read from the ledger again.
SPENT_TTL = 86400

_ADMIT = """
local budget = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local spent = redis.call('GET', KEYS[1])
if not spent then return {'seed', '0'} end
spent = tonumber(spent)
if spent >= budget then return {'spent', tostring(spent)} end
local n = redis.call('ZCARD', KEYS[2])
local most = redis.call('GET', KEYS[3])
if n > 0 and ((not most) or spent + (n + 1) * tonumber(most) > budget) then
  return {'wait', tostring(spent)}
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
return {'ok', tostring(spent)}
"""

_SETTLE = """
local cost = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 and cost > 0 then
  redis.call('INCRBYFLOAT', KEYS[1], ARGV[2])
end
redis.call('ZREM', KEYS[2], ARGV[1])
local most = redis.call('GET', KEYS[3])
if (not most) or cost > tonumber(most) then
  redis.call('SET', KEYS[3], ARGV[2], 'EX', tonumber(ARGV[3]))
end
return 1
"""

_RPM = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then return redis.call('PTTL', KEYS[1]) end
return 0
"""


class Limited(Exception):
    """A request the key's limits refuse now: `reason` is "rpm" or "budget"."""

    def __init__(self, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


@dataclass(slots=True)
class Lease:
    """One admitted request of a budgeted key: its calls' records, priced when it ends."""

    link: Link
    key: str
    id: str
    context: "CallContext"
    records: list["CallRecord"] = field(default_factory=list)

    async def settle(self) -> float:
        """Price the request's calls, add them to the spend and release the reservation."""
        _open.pop(id(self.context), None)
        cost = 0.0
        if self.records:
            from ..usage.ledger import row_for

            for rec in self.records:
                try:
                    cost += row_for(rec)["cost_usd"] or 0.0
                except Exception:  # a price table that cannot price it: the ledger says unknown too
                    pass
        keys = _keys(self.key)
        try:
            await self.link.run("settling a budget", lambda r: r.eval(_SETTLE, 3, *keys, self.id, repr(cost), SPENT_TTL))
        except RedisDown:
            pass  # the lease expires by itself; the spend is the ledger's again once the counter is re-seeded
        return cost


def _keys(name: str) -> list[str]:
    return [f"synapse:spent:{name}", f"synapse:inflight:{name}", f"synapse:most:{name}"]


#: Contexts of requests in flight (id -> lease): the call path's observer adds their records.
_open: dict[int, Lease] = {}
_observing = False


def observe(rec: "CallRecord") -> None:
    """Call-path observer: a record made for a leased request joins its lease."""
    lease = _open.get(id(rec.context)) if rec.context is not None else None
    if lease is not None and lease.context is rec.context:
        lease.records.append(rec)


async def admit(link: Link, key: "KeyInfo", settings: Mapping[str, Any]) -> Lease | None:
    """Check the key's rate limit and reserve room in its budget (Limited when refused).

    Returns the lease to settle when the request ends (None: the key has no budget, or
    Redis is down and the caller's own reckoning applies)."""
    if key.rpm:
        await _rate(link, key)
    if key.budget_usd is None:
        return None
    from ..client import CallContext, add_observer

    global _observing
    if not _observing:
        add_observer(observe)
        _observing = True
    lease_id = os.urandom(8).hex()
    keys = _keys(key.name)
    deadline = time.monotonic() + QUEUE_SECONDS
    delay = 0.01
    try:
        while True:
            state, spent = await link.run("checking a budget", lambda r: r.eval(
                _ADMIT, 3, *keys, repr(float(key.budget_usd or 0.0)), lease_id, int(LEASE_SECONDS * 1000)))
            state = state.decode() if isinstance(state, bytes) else state
            if state == "ok":
                break
            if state == "seed":
                await _seed(link, key, settings)
                continue
            if state == "spent":
                raise Limited("budget", f"the API key {key.name!r} has spent its budget of ${key.budget_usd:.2f} "
                              f"(${float(spent):.4f} so far): make a new key with a larger --budget-usd")
            if time.monotonic() + delay > deadline:
                raise Limited("budget", f"the API key {key.name!r} is near its budget of ${key.budget_usd:.2f} and "
                              "has requests in flight: try again when they end", retry_after=1.0)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
    except RedisDown:
        return None
    ctx = CallContext(key=key.name, parent=key.context)
    lease = Lease(link, key.name, lease_id, ctx)
    _open[id(ctx)] = lease
    return lease


async def _seed(link: Link, key: "KeyInfo", settings: Mapping[str, Any]) -> None:
    """Start the key's spend counter at what the usage ledger holds for it."""
    from .. import storage
    from ..usage.ledger import key_spend

    url = storage.database_url(settings)
    try:
        spent = await asyncio.to_thread(key_spend, key.name, url)
    except Exception:
        spent = key.spent()  # the database is down: this process's reckoning
    await link.run("seeding a budget", lambda r: r.set(_keys(key.name)[0], repr(spent), nx=True, ex=SPENT_TTL))


#: Wall clock of the rate-limit windows (tests hold it still).
_clock = time.time


async def _rate(link: Link, key: "KeyInfo") -> None:
    now = _clock()
    window = int(now // 60)
    try:
        wait_ms = await link.run("counting a rate limit", lambda r: r.eval(
            _RPM, 1, f"synapse:rpm:{key.name}:{window}", int(key.rpm or 0), 61_000))
    except RedisDown:
        local_rpm(key)
        return
    if int(wait_ms) > 0:
        raise _rpm_refusal(key, max(1.0, 60 - now % 60))


def _rpm_refusal(key: "KeyInfo", wait: float) -> Limited:
    return Limited("rpm", f"the API key {key.name!r} may make {key.rpm} requests a minute: wait {wait:.0f} s",
                   retry_after=wait)


#: (the key's context, minute) -> requests: the key's context is one per key and database.
_local: dict[tuple[int, int], int] = {}
_local_lock = threading.Lock()


def local_rpm(key: "KeyInfo") -> None:
    """The rate limit counted by this instance alone (no Redis, or Redis down)."""
    if not key.rpm:
        return
    now = _clock()
    window = int(now // 60)
    slot = (id(key.context), window)
    with _local_lock:
        if len(_local) > 10_000:
            for k in [k for k in _local if k[1] < window]:
                del _local[k]
        n = _local.get(slot, 0) + 1
        _local[slot] = n
    if n > key.rpm:
        raise _rpm_refusal(key, max(1.0, 60 - now % 60))
