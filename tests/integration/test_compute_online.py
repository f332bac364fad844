"""The online router against fake providers on 127.0.0.1 that fail, hang and return 429."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.compute.online import OnlineRouter, embed_online, rerank_online
from shared.providers.resilience import (
    AllProvidersFailed,
    BreakerRegistry,
    BreakerState,
    FailureKind,
    FallbackChain,
    ProviderError,
)
from tests.fakes.compute_env import use_logic_yaml
from tests.fakes.http import Fault
from tests.fakes.runpod_jobs import FakeRunPod
from tests.fakes.together import intelligence_server, together_server

LOGIC = """
providers:
  rp:
    type: runpod
    base_url: {rp}
    api_key_env: RUNPOD_API_KEY
    timeout_seconds: 5
    options: {{endpoint_id: ep-test, dimension: 8}}
  intel:
    type: intelligence_api
    base_url: {intel}/v1
    api_key_env: INTELLIGENCE_API_KEY
    model: bge-m3
    timeout_seconds: 5
  tog:
    type: together
    base_url: {tog}/v1
    api_key_env: TOGETHER_API_KEY
    model: BAAI/bge-base-en-v1.5
    timeout_seconds: 5
compute:
  online:
    embed: {{providers: [rp, intel, tog], budget_seconds: 2.0, max_attempts: 2}}
    rerank: {{providers: [rp, tog], budget_seconds: 2.0, max_attempts: 1}}
"""


class Env:
    def __init__(self, rp: FakeRunPod, intel: Any, tog: Any) -> None:
        self.rp, self.intel, self.tog = rp, intel, tog
        self.clock = 0.0
        self.breakers = BreakerRegistry(failure_threshold=2, recovery_seconds=30, clock=self.now)
        self.router = OnlineRouter(FallbackChain(self.breakers))

    def now(self) -> float:  # breaker clock only; budgets run on real time
        return time.monotonic() + self.clock

    def rp_calls(self) -> int:
        return len(self.rp.server.calls("/v2/ep-test/runsync"))


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Env]:
    rp = FakeRunPod().start()
    intel = intelligence_server().start()
    tog = together_server().start()
    monkeypatch.setenv("RUNPOD_API_KEY", "runpod-test-key")
    monkeypatch.setenv("INTELLIGENCE_API_KEY", "intel-test-key")
    monkeypatch.setenv("TOGETHER_API_KEY", "together-test-key")
    use_logic_yaml(monkeypatch, tmp_path, LOGIC.format(rp=rp.base_url, intel=intel.url, tog=tog.url))
    yield Env(rp, intel, tog)
    for s in (rp.server, intel, tog):
        s.stop()
    from shared.config import store

    store.set_store(None)


def _is_unit(v: list[float]) -> bool:
    return abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-6


def test_runpod_first_then_nothing_else_is_called(env: Env) -> None:
    res = env.router.run("embed", {"texts": ["a dragon", "a sword"]})
    assert res.provider == "rp" and len(res.output["embeddings"]) == 2
    assert all(_is_unit(v) for v in res.output["embeddings"])
    assert env.intel.calls() == [] and env.tog.calls() == []
    vectors = embed_online(["x"], router=env.router)
    assert len(vectors) == 1 and _is_unit(vectors[0])


def test_provider_down_opens_breaker_fallback_serves_half_open_probe_recovers(env: Env) -> None:
    env.rp.server.fail_always("/v2/ep-test/runsync", Fault(status=503))
    first = env.router.run("embed", {"texts": ["a"]})
    assert first.provider == "intel"
    assert env.rp_calls() == 2  # two attempts (with backoff) inside the budget, then fall back
    assert env.breakers.get("rp").state is BreakerState.OPEN  # threshold 2 reached
    for _ in range(3):  # open: RunPod is not even tried
        assert env.router.run("embed", {"texts": ["b"]}).provider == "intel"
    assert env.rp_calls() == 2
    env.clock += 31  # recovery time passes: half-open lets exactly one probe through
    assert env.breakers.get("rp").state is BreakerState.HALF_OPEN
    assert env.router.run("embed", {"texts": ["c"]}).provider == "intel"  # the probe failed
    assert env.rp_calls() == 3 and env.breakers.get("rp").state is BreakerState.OPEN
    env.rp.server.fail_always("/v2/ep-test/runsync", None)  # RunPod heals
    env.clock += 31
    assert env.router.run("embed", {"texts": ["d"]}).provider == "rp"  # probe succeeds: recovered
    assert env.breakers.get("rp").state is BreakerState.CLOSED
    assert env.router.run("embed", {"texts": ["e"]}).provider == "rp"
    stats = env.router.chain.observer.stats
    assert stats["rp"].errors == 3 and stats["intel"].calls == 5


def test_429_honours_retry_after_as_a_short_cooldown(env: Env) -> None:
    env.rp.server.fail_next("/v2/ep-test/runsync", Fault(status=429, headers={"Retry-After": "20"}))
    assert env.router.run("embed", {"texts": ["a"]}).provider == "intel"
    assert env.rp_calls() == 1  # a 429 is not retried against the same provider
    assert env.breakers.get("rp").state is BreakerState.COOLDOWN
    assert env.router.run("embed", {"texts": ["a"]}).provider == "intel"
    assert env.rp_calls() == 1  # skipped during the cooldown
    env.clock += 21
    assert env.router.run("embed", {"texts": ["a"]}).provider == "rp"


def test_401_marks_misconfigured_and_other_4xx_is_the_callers_error(env: Env) -> None:
    env.rp.server.fail_always("/v2/ep-test/runsync", Fault(status=401))
    env.intel.fail_next("/v1/embeddings", Fault(status=403))
    assert env.router.run("embed", {"texts": ["a"]}).provider == "tog"
    assert env.breakers.get("rp").state is BreakerState.MISCONFIGURED
    assert env.breakers.get("intel").state is BreakerState.MISCONFIGURED
    env.rp.server.fail_always("/v2/ep-test/runsync", None)
    env.tog.reset()
    env.intel.reset()
    env.breakers.get("rp").record_success()
    env.breakers.get("intel").record_success()
    env.rp.server.fail_next("/v2/ep-test/runsync", Fault(status=400, body={"error": "bad input"}))
    with pytest.raises(ProviderError) as info:
        env.router.run("embed", {"texts": ["a"]})
    assert info.value.kind is FailureKind.CLIENT
    assert env.intel.calls() == []
    assert env.tog.calls() == []  # no fallback for the caller's error
    assert env.breakers.get("rp").state is BreakerState.CLOSED  # not counted against RunPod


def test_unset_fallback_is_skipped_as_misconfigured(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTELLIGENCE_API_KEY")
    env.rp.server.fail_always("/v2/ep-test/runsync", Fault(status=500))
    assert env.router.run("embed", {"texts": ["a"]}).provider == "tog"
    assert env.breakers.get("intel").state is BreakerState.MISCONFIGURED
    assert env.intel.calls() == []


def test_the_budget_holds_when_every_provider_hangs(env: Env) -> None:
    hang = Fault(delay=10)
    env.rp.server.fail_always("/v2/ep-test/runsync", hang)
    env.intel.fail_always("/v1/embeddings", hang)
    env.tog.fail_always("/v1/embeddings", hang)
    started = time.monotonic()
    with pytest.raises(AllProvidersFailed) as info:
        env.router.run("embed", {"texts": ["a"]})
    elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 2.3, elapsed
    assert info.value.budget_exhausted


def test_rerank_falls_back_to_together(env: Env) -> None:
    env.rp.server.fail_always("/v2/ep-test/runsync", Fault(status=502))
    results = rerank_online(
        "fire dragon", ["a cold lake", "the fire dragon sleeps", "dragon"], top_n=2, router=env.router
    )
    assert [r.index for r in results] == [1, 2]
    assert env.tog.calls("/v1/rerank")[0].json()["top_n"] == 2
