"""One reliability mechanism for every provider call: error classification, circuit breakers,
retries with backoff and jitter inside a time budget, and fallback along an ordered provider list.

Used by the online compute router (embeddings, rerank) and by genlayers (LLM calls) alike.

Error classes (``FailureKind``):
  TRANSIENT     5xx, timeouts, connection errors: counts against the breaker, retried, then fall back.
  RATE_LIMITED  429: the provider is skipped for ``Retry-After`` (a short cooldown), then fall back.
  CLIENT        other 4xx: the caller's error; not counted, no fallback, raised at once.
  AUTH          401/403: the provider is misconfigured; it is taken out for a long cooldown, fall back.

Breaker state lives in the process. In Lambda that means per execution environment: each warm
instance learns about an outage on its own after ``failure_threshold`` failures, and a cold instance
starts closed. That is deliberate: sharing state would put a database or cache round trip on every
online call, and the cost of not sharing is at most ``failure_threshold`` failed calls per instance.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class FailureKind(StrEnum):
    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    CLIENT = "client"
    AUTH = "auth"


class ProviderError(RuntimeError):
    def __init__(
        self,
        provider: str,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider, self.kind, self.status, self.retry_after = provider, kind, status, retry_after


class AllProvidersFailed(RuntimeError):
    """Every provider failed, was skipped, or the budget ran out; ``errors`` says what happened to each."""

    def __init__(self, errors: list[ProviderError], *, budget_exhausted: bool = False) -> None:
        summary = "; ".join(str(e) for e in errors) or "no provider configured"
        prefix = "time budget exhausted" if budget_exhausted else "all providers failed"
        super().__init__(f"{prefix}: {summary}")
        self.errors, self.budget_exhausted = errors, budget_exhausted

    @property
    def retry_after(self) -> float | None:
        hints = [e.retry_after for e in self.errors if e.retry_after]
        return min(hints) if hints else None


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def kind_for_status(status: int) -> FailureKind:
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status in (401, 403):
        return FailureKind.AUTH
    if status in (408, 409, 425) or status >= 500:
        return FailureKind.TRANSIENT
    return FailureKind.CLIENT


def classify(provider: str, exc: BaseException) -> ProviderError:
    """Map any exception from an adapter (httpx, openai, our own) to a ``ProviderError``."""
    if isinstance(exc, ProviderError):
        return exc
    from shared.config.env import MissingSetting

    if isinstance(exc, MissingSetting):  # no key / endpoint configured: misconfigured, not flaky
        return ProviderError(provider, FailureKind.AUTH, str(exc))
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if status is None and response is not None:
        status = getattr(response, "status_code", None)
    if isinstance(status, int):
        headers = getattr(response, "headers", None) or {}
        retry_after = parse_retry_after(headers.get("retry-after") if hasattr(headers, "get") else None)
        return ProviderError(
            provider, kind_for_status(status), f"HTTP {status}", status=status, retry_after=retry_after
        )
    name = type(exc).__name__.lower()
    if isinstance(exc, TimeoutError | ConnectionError | OSError) or "timeout" in name or "connect" in name:
        return ProviderError(provider, FailureKind.TRANSIENT, f"{type(exc).__name__}: {exc}")
    return ProviderError(provider, FailureKind.TRANSIENT, f"{type(exc).__name__}: {exc}")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    COOLDOWN = "cooldown"  # rate limited: skipped until Retry-After passes, not counted as a failure
    MISCONFIGURED = "misconfigured"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        recovery_seconds: float = 30.0,
        misconfigured_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold, self.recovery_seconds = failure_threshold, recovery_seconds
        self.misconfigured_seconds = misconfigured_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._state = BreakerState.CLOSED
        self._until = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if (
                self._state in (BreakerState.COOLDOWN, BreakerState.MISCONFIGURED)
                and self._clock() >= self._until
            ):
                self._state = BreakerState.CLOSED
            if self._state is BreakerState.OPEN and self._clock() >= self._until:
                return BreakerState.HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open state exactly one probe is let through."""
        with self._lock:
            now = self._clock()
            if self._state in (BreakerState.COOLDOWN, BreakerState.MISCONFIGURED):
                if now < self._until:
                    return False
                self._state = BreakerState.CLOSED
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                if now < self._until:
                    return False
                self._state = BreakerState.HALF_OPEN
                self._probe_in_flight = False
            if self._probe_in_flight:
                return False
            self._probe_in_flight = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._state = BreakerState.CLOSED
            self._probe_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._probe_in_flight = False
            if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = BreakerState.OPEN
                self._until = self._clock() + self.recovery_seconds

    def cooldown(self, seconds: float) -> None:
        with self._lock:
            self._probe_in_flight = False
            if self._state is not BreakerState.OPEN:
                self._state = BreakerState.COOLDOWN
                self._until = max(self._until, self._clock() + seconds)

    def mark_misconfigured(self) -> None:
        with self._lock:
            self._probe_in_flight = False
            self._state = BreakerState.MISCONFIGURED
            self._until = self._clock() + self.misconfigured_seconds


class BreakerRegistry:
    """Breakers by provider name, shared by every call in this process."""

    def __init__(self, **defaults: Any) -> None:
        self._defaults = defaults
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CircuitBreaker:
        with self._lock:
            if name not in self._breakers:
                self._breakers[name] = CircuitBreaker(name, **self._defaults)
            return self._breakers[name]

    def states(self) -> dict[str, str]:
        return {n: b.state.value for n, b in self._breakers.items()}


@dataclass(frozen=True)
class CallPolicy:
    budget_seconds: float = 2.0
    max_attempts: int = 2  # per provider, before falling back
    backoff_base: float = 0.05
    backoff_max: float = 0.5
    default_cooldown: float = 1.0  # 429 without Retry-After
    rate_limit_wait_max: float = 0.0  # > 0: wait out a 429 whose Retry-After is this short, same provider

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * (2**attempt)))


@dataclass
class ProviderStats:
    calls: int = 0
    errors: int = 0
    latency_ms_total: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)


class Observer:
    """Receives one event per provider attempt; the default records EMF metrics."""

    def __init__(self) -> None:
        self.stats: dict[str, ProviderStats] = {}
        self._lock = threading.Lock()

    def attempt(
        self, provider: str, latency_ms: float, error: ProviderError | None, state: BreakerState
    ) -> None:
        with self._lock:
            s = self.stats.setdefault(provider, ProviderStats())
            s.calls += 1
            s.latency_ms_total += latency_ms
            if error is not None:
                s.errors += 1
                s.by_kind[error.kind.value] = s.by_kind.get(error.kind.value, 0) + 1
        try:
            from shared.observability.metrics import MetricUnit, add_metric

            add_metric(f"ProviderLatency_{provider}", latency_ms, MetricUnit.Milliseconds)
            if error is not None:
                add_metric(f"ProviderErrors_{provider}", 1)
            if state in (BreakerState.OPEN, BreakerState.MISCONFIGURED):
                add_metric("ProviderBreakerOpen", 1)
        except Exception:  # noqa: S110 - metrics must never break a call
            pass


@dataclass(frozen=True)
class Candidate(Generic[T]):
    """One provider in a fallback chain: ``call(timeout_seconds)`` must honour the timeout it is given."""

    name: str
    call: Callable[[float], T]


class FallbackChain:
    def __init__(
        self,
        breakers: BreakerRegistry | None = None,
        *,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.breakers = breakers or BreakerRegistry()
        self.observer = observer or Observer()
        self._clock, self._sleep = clock, sleep

    def call(self, candidates: Sequence[Candidate[T]], policy: CallPolicy = CallPolicy()) -> tuple[str, T]:
        """Return ``(provider_name, result)`` of the first provider that succeeds inside the budget.

        Raises the ``ProviderError`` of a CLIENT failure as is (the request is wrong, another provider
        would refuse it too), and ``AllProvidersFailed`` otherwise.
        """
        deadline = self._clock() + policy.budget_seconds
        errors: list[ProviderError] = []
        for cand in candidates:
            breaker = self.breakers.get(cand.name)
            attempt = 0
            while True:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise AllProvidersFailed(errors, budget_exhausted=True)
                if not breaker.allow():
                    errors.append(
                        ProviderError(
                            cand.name, FailureKind.TRANSIENT, f"skipped: breaker {breaker.state.value}"
                        )
                    )
                    break
                started = self._clock()
                try:
                    result = cand.call(remaining)
                except Exception as exc:
                    err = classify(cand.name, exc)
                    if self._clock() >= deadline and err.kind is FailureKind.TRANSIENT:
                        err = ProviderError(cand.name, FailureKind.TRANSIENT, f"timed out: {err}")
                    self._after_failure(breaker, err, policy)
                    self.observer.attempt(cand.name, (self._clock() - started) * 1000, err, breaker.state)
                    if err.kind is FailureKind.CLIENT:
                        raise err from exc
                    errors.append(err)
                    attempt += 1
                    if self._wait_out_rate_limit(err, attempt, policy, deadline):
                        continue
                    if err.kind is not FailureKind.TRANSIENT or attempt >= policy.max_attempts:
                        break
                    pause = policy.backoff(attempt)
                    if self._clock() + pause >= deadline:
                        break
                    self._sleep(pause)
                    continue
                breaker.record_success()
                self.observer.attempt(cand.name, (self._clock() - started) * 1000, None, breaker.state)
                return cand.name, result
        raise AllProvidersFailed(errors, budget_exhausted=deadline - self._clock() <= 0)

    def _wait_out_rate_limit(
        self, err: ProviderError, attempt: int, policy: CallPolicy, deadline: float
    ) -> bool:
        """A short Retry-After (<= ``policy.rate_limit_wait_max``) inside the budget: sleep, then retry."""
        if err.kind is not FailureKind.RATE_LIMITED or policy.rate_limit_wait_max <= 0:
            return False
        wait = err.retry_after if err.retry_after is not None else policy.default_cooldown
        if attempt >= policy.max_attempts or wait > policy.rate_limit_wait_max:
            return False
        if self._clock() + wait >= deadline:
            return False
        self._sleep(wait)
        return True

    @staticmethod
    def _after_failure(breaker: CircuitBreaker, err: ProviderError, policy: CallPolicy) -> None:
        if err.kind is FailureKind.TRANSIENT:
            breaker.record_failure()
        elif err.kind is FailureKind.RATE_LIMITED:
            breaker.cooldown(err.retry_after if err.retry_after is not None else policy.default_cooldown)
        elif err.kind is FailureKind.AUTH:
            breaker.mark_misconfigured()
        else:  # CLIENT: the provider answered correctly; it is healthy
            breaker.record_success()


_default_chain: FallbackChain | None = None


def default_chain() -> FallbackChain:
    """The process-wide chain (breakers shared by every caller in this Lambda environment)."""
    global _default_chain
    if _default_chain is None:
        _default_chain = FallbackChain()
    return _default_chain
