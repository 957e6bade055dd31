"""Scale mode's Redis parts against a real redis-server: what two instances share, and what
each does alone while Redis is down (said once in the log, not per call)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

import synapse
from synapse import settings as settings_mod
from synapse.client import CallContext
from synapse.gateway.keys import KeyInfo
from synapse.providers.catalog import PROVIDERS, ProviderSpec
from synapse.scale import limits, shared
from synapse.scale.sessions import SharedSessionStore
from synapse.scale.throttle import SharedLoginThrottle
from synapse.server.status import StatusBoard
from synapse.types import ModelInfo
from tests.fakes.anthropic import AnthropicFake

CLAUDE = "claude-sonnet-4-5"


@pytest.fixture
def fake(anthropic_fake: AnthropicFake, configure: Any, redis_url: str) -> AnthropicFake:
    anthropic_fake.reset()
    configure(anthropic_key=AnthropicFake.KEY, anthropic_base_url=anthropic_fake.url, response_cache_ttl=120)
    return anthropic_fake


def _link() -> shared.Link:
    one = shared.link(settings_mod.load())
    assert one is not None
    return one


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "synapse.scale" and r.levelno >= logging.WARNING]


# --- the response cache ------------------------------------------------------------------------


async def test_the_response_cache_is_shared_by_instances_and_expires_with_its_ttl(
    fake: AnthropicFake, synapse_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = await synapse.achat(CLAUDE, "What is 2+2?", cache="exact")
    # Another instance: its own, empty data folder, the same provider and the same Redis.
    other = tmp_path / "instance-2"
    monkeypatch.setenv("SYNAPSE_DATA_DIR", str(other))
    settings_mod.update({"anthropic_key": AnthropicFake.KEY, "anthropic_base_url": fake.url, "response_cache_ttl": 120})
    again = await synapse.achat(CLAUDE, "What is 2+2?", cache="exact")
    assert len(fake.requests) == 1 and again.text == first.text
    assert not (synapse_env / "cache").exists() and not (other / "cache").exists()  # nothing on disk
    import redis

    with redis.Redis.from_url(_link().url) as r:
        [key] = r.keys("synapse:rc:*")
        assert 110_000 < r.pttl(key) <= 120_000  # Redis drops it after response_cache_ttl


async def test_semantic_hits_are_shared_too(fake: AnthropicFake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    await synapse.achat(CLAUDE, "What is the capital of France?", cache="semantic")
    monkeypatch.setenv("SYNAPSE_DATA_DIR", str(tmp_path / "instance-2"))
    settings_mod.update({"anthropic_key": AnthropicFake.KEY, "anthropic_base_url": fake.url, "response_cache_ttl": 120})
    await synapse.achat(CLAUDE, "What's the capital of France?", cache="semantic")
    assert len(fake.requests) == 1


async def test_redis_down_skips_the_cache_and_says_so_once(
    fake: AnthropicFake, redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server.stop()
    for _ in range(4):
        reply = await synapse.achat(CLAUDE, "What is 2+2?", cache="exact")
        assert reply.text
    assert len(fake.requests) == 4  # every call went to the provider, none failed
    said = _warnings(caplog)
    assert len(said) == 1 and "unreachable" in said[0] and "response cache is skipped" in said[0]
    redis_server.start()
    await asyncio.sleep(shared.BACKOFF + 0.1)
    await synapse.achat(CLAUDE, "What is 2+2?", cache="exact")
    await synapse.achat(CLAUDE, "What is 2+2?", cache="exact")
    assert len(fake.requests) == 5  # back: the second one was a hit
    assert any("is back" in m for m in _warnings(caplog))


# --- login sessions and throttling -----------------------------------------------------------------


async def test_a_login_on_one_instance_is_a_login_on_another(redis_url: str) -> None:
    one = SharedSessionStore(_link(), secret=b"k" * 32)
    two = SharedSessionStore(_link(), secret=b"k" * 32)
    session = await one.alogin("admin")
    seen = await two.aget(session.id)
    assert seen is not None and seen.user == "admin" and seen.csrf == session.csrf
    assert len(one) == 0  # nothing kept in the instance's memory
    await two.adrop(session.id)
    assert await one.aget(session.id) is None


async def test_sessions_fall_back_to_the_instance_while_redis_is_down(redis_url: str, redis_server: Any) -> None:
    store = SharedSessionStore(_link(), secret=b"k" * 32)
    redis_server.stop()
    session = await store.alogin("admin")
    assert (await store.aget(session.id)).user == "admin"  # type: ignore[union-attr]
    assert len(store) == 1


async def test_wrong_passwords_count_across_instances(redis_url: str) -> None:
    a, b = SharedLoginThrottle(_link()), SharedLoginThrottle(_link())
    for throttle in (a, b, a, b, a):
        stamp, wait = await throttle.aattempt("10.0.0.7", "admin")
        assert stamp and not wait
    stamp, wait = await b.aattempt("10.0.0.7", "admin")
    assert stamp == 0 and 55 < wait <= 60  # the pair's window: 5 a minute, wherever they landed
    assert (await a.aattempt("10.0.0.8", "admin"))[1] == 0  # another client may still try


async def test_a_right_password_gives_its_attempt_back(redis_url: str) -> None:
    a, b = SharedLoginThrottle(_link()), SharedLoginThrottle(_link())
    for _ in range(4):
        await a.aattempt("10.0.0.9", "ada")
    stamp, _ = await b.aattempt("10.0.0.9", "ada")
    await b.asucceeded("10.0.0.9", "ada", stamp)
    assert (await a.aattempt("10.0.0.9", "ada"))[1] == 0  # the fifth slot came back


# --- status dots -------------------------------------------------------------------------------


async def test_a_check_made_by_one_instance_shows_on_another(configure: Any, redis_url: str) -> None:
    s = configure(anthropic_key="sk-ant-api03-status-share-1234")
    spec: ProviderSpec = next(p for p in PROVIDERS if p.id == "anthropic")
    checks: list[str] = []

    class Stub:
        async def verify(self) -> list[ModelInfo]:
            checks.append("x")
            return [ModelInfo("claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5")]

    one = StatusBoard(lambda sp, st: Stub(), shared=_link())
    two = StatusBoard(lambda sp, st: Stub(), shared=_link())
    status = await one.wait(spec, s)
    assert status.state == "ok" and checks == ["x"]
    await two.adopt([spec], s)
    assert two.status(spec, s).state == "ok" and checks == ["x"]  # no second check
    import redis

    with redis.Redis.from_url(_link().url) as r:
        assert b"status-share" not in r.get("synapse:status:anthropic")  # the key never reaches Redis
    changed = configure(anthropic_key="sk-ant-api03-another-key-5678")
    three = StatusBoard(lambda sp, st: Stub(), shared=_link())
    await three.adopt([spec], changed)
    assert three.status(spec, changed).state == "checking"  # a result for another key is not taken
    await three.close()


# --- rate limits and budgets -----------------------------------------------------------------------


def _key(name: str, *, rpm: int | None = None, budget: float | None = None) -> KeyInfo:
    return KeyInfo(name, "sk-syn-xxxxx", (), budget, 0.0, None, None, rpm, CallContext(key=name))


async def test_a_rate_limit_is_counted_across_instances(synapse_env: Path, redis_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "_clock", lambda: 1_765_000_050.0)  # one window, whenever the test runs
    key = _key("rl", rpm=3)
    s = settings_mod.load()
    for _ in range(3):
        assert await limits.admit(_link(), key, s) is None
    with pytest.raises(limits.Limited) as refused:
        await limits.admit(shared.Link(redis_url), key, s)  # another instance's own link
    assert refused.value.reason == "rpm" and refused.value.retry_after == 30


async def test_a_budget_admits_one_request_until_one_is_priced_then_as_many_as_fit(
    synapse_env: Path, redis_url: str
) -> None:
    from synapse.client import CallRecord
    from synapse.types import Usage

    key = _key("budget", budget=0.01)
    s = settings_mod.load()
    first = await limits.admit(_link(), key, s)
    assert first is not None
    waiting = asyncio.ensure_future(limits.admit(_link(), key, s))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # the cost of a request is unknown yet: one at a time
    # The first request's call: 10,000 input tokens of gpt-4o-mini = $0.0015.
    rec = CallRecord("openai", "gpt-4o-mini", "gpt-4o-mini", 1.76e9, 0.1, 0.05, Usage(input_tokens=10_000), "ok",
                     False, context=first.context, settings=s)
    limits.observe(rec)
    assert await first.settle() == pytest.approx(0.0015)
    second = await asyncio.wait_for(waiting, 5)
    assert second is not None
    # Room for (0.01 - 0.0015) / 0.0015 = 5 more at once: admitted without waiting.
    more = [await asyncio.wait_for(limits.admit(_link(), key, s), 1) for _ in range(4)]
    assert all(m is not None for m in more)
    over = asyncio.ensure_future(limits.admit(_link(), key, s))
    await asyncio.sleep(0.3)
    assert not over.done()  # a sixth in flight could pass the budget: it waits
    over.cancel()


async def test_a_spent_budget_is_refused_and_redis_down_falls_back(synapse_env: Path, redis_url: str,
                                                                   redis_server: Any) -> None:
    key = _key("spent", budget=0.001)
    import redis

    with redis.Redis.from_url(redis_url) as r:
        r.set("synapse:spent:spent", "0.0011")
    with pytest.raises(limits.Limited) as refused:
        await limits.admit(_link(), key, settings_mod.load())
    assert refused.value.reason == "budget" and "has spent its budget" in refused.value.message
    redis_server.stop()
    assert await limits.admit(_link(), key, settings_mod.load()) is None  # the gateway's own reckoning decides
