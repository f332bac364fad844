"""Breakers, retries inside the budget, fallback and error classes of the shared resilience mechanism."""

from __future__ import annotations

import pytest

from shared.providers.resilience import (
    AllProvidersFailed,
    BreakerRegistry,
    BreakerState,
    CallPolicy,
    Candidate,
    CircuitBreaker,
    FailureKind,
    FallbackChain,
    ProviderError,
    classify,
)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def chain(clock: Clock, **breaker_kw: float) -> FallbackChain:
    return FallbackChain(BreakerRegistry(clock=clock, **breaker_kw), clock=clock, sleep=clock.sleep)


def fail(kind: FailureKind, **kw: object):  # type: ignore[no-untyped-def]
    def call(timeout: float) -> str:
        raise ProviderError("p", kind, "boom", **kw)  # type: ignore[arg-type]

    return call


def test_falls_back_to_the_next_provider_on_transient_errors() -> None:
    clock = Clock()
    name, result = chain(clock).call(
        [Candidate("a", fail(FailureKind.TRANSIENT)), Candidate("b", lambda t: "ok")]
    )
    assert (name, result) == ("b", "ok")


def test_client_error_is_raised_without_fallback() -> None:
    clock = Clock()
    called = []
    with pytest.raises(ProviderError) as err:
        chain(clock).call(
            [Candidate("a", fail(FailureKind.CLIENT)), Candidate("b", lambda t: called.append(1))]
        )
    assert err.value.kind is FailureKind.CLIENT and called == []


def test_breaker_opens_then_half_open_probe_then_recovers() -> None:
    clock = Clock()
    c = chain(clock, failure_threshold=3, recovery_seconds=10)
    state = {"down": True}

    def flaky(timeout: float) -> str:
        if state["down"]:
            raise ProviderError("a", FailureKind.TRANSIENT, "503", status=503)
        return "a-ok"

    policy = CallPolicy(max_attempts=1)
    for _ in range(3):
        assert c.call([Candidate("a", flaky), Candidate("b", lambda t: "b-ok")], policy)[0] == "b"
    assert c.breakers.get("a").state is BreakerState.OPEN
    calls_while_open = []
    c.call(
        [Candidate("a", lambda t: calls_while_open.append(1) or "x"), Candidate("b", lambda t: "b-ok")],
        policy,
    )
    assert calls_while_open == []  # skipped while open
    clock.t += 10
    assert c.breakers.get("a").state is BreakerState.HALF_OPEN
    state["down"] = False
    assert c.call([Candidate("a", flaky), Candidate("b", lambda t: "b-ok")], policy) == ("a", "a-ok")
    assert c.breakers.get("a").state is BreakerState.CLOSED


def test_half_open_lets_one_probe_through_and_a_failed_probe_reopens() -> None:
    clock = Clock()
    br = CircuitBreaker("a", failure_threshold=1, recovery_seconds=5, clock=clock)
    br.record_failure()
    assert not br.allow()
    clock.t = 5
    assert br.allow() and not br.allow()  # one probe only
    br.record_failure()
    assert br.state is BreakerState.OPEN and not br.allow()


def test_429_honours_retry_after_as_a_cooldown() -> None:
    clock = Clock()
    c = chain(clock)
    assert (
        c.call(
            [Candidate("a", fail(FailureKind.RATE_LIMITED, retry_after=3.0)), Candidate("b", lambda t: 1)]
        )[0]
        == "b"
    )
    assert c.breakers.get("a").state is BreakerState.COOLDOWN
    clock.t = 3.0
    assert c.call([Candidate("a", lambda t: 1), Candidate("b", lambda t: 2)])[0] == "a"


def test_auth_failure_marks_the_provider_misconfigured() -> None:
    clock = Clock()
    c = chain(clock)
    c.call([Candidate("a", fail(FailureKind.AUTH)), Candidate("b", lambda t: 1)])
    assert c.breakers.get("a").state is BreakerState.MISCONFIGURED


def test_retries_stay_inside_the_budget() -> None:
    clock = Clock()
    seen_timeouts: list[float] = []

    def slow_fail(timeout: float) -> str:
        seen_timeouts.append(timeout)
        clock.t += timeout  # a call that hangs until its timeout
        raise TimeoutError("hung")

    with pytest.raises(AllProvidersFailed) as err:
        chain(clock).call(
            [Candidate("a", slow_fail), Candidate("b", slow_fail)], CallPolicy(budget_seconds=2.0)
        )
    assert err.value.budget_exhausted
    assert clock.t == pytest.approx(2.0)
    assert seen_timeouts[0] == pytest.approx(2.0)


def test_classify_http_like_errors() -> None:
    class Resp:
        def __init__(self, status: int, headers: dict[str, str]) -> None:
            self.status_code, self.headers = status, headers

    class HTTPErr(Exception):
        def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
            self.response = Resp(status, headers or {})

    assert classify("p", HTTPErr(503)).kind is FailureKind.TRANSIENT
    limited = classify("p", HTTPErr(429, {"retry-after": "7"}))
    assert limited.kind is FailureKind.RATE_LIMITED and limited.retry_after == 7
    assert classify("p", HTTPErr(403)).kind is FailureKind.AUTH
    assert classify("p", HTTPErr(422)).kind is FailureKind.CLIENT
    assert classify("p", TimeoutError()).kind is FailureKind.TRANSIENT


def test_a_missing_setting_is_a_misconfigured_provider_not_a_transient_fault() -> None:
    from shared.config.env import MissingSetting

    err = classify("openai", MissingSetting("OPENAI_API_KEY", "OpenAI API key"))
    assert err.kind is FailureKind.AUTH and "OPENAI_API_KEY" in str(err)
