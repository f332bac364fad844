"""One generation: profile → input checks → (memory) → cache → limits → provider calls with
structured-output retries → ledger → cache. Orchestrated profiles hand over to ``orchestrator``.

Provider calls go through ``shared.providers.resilience`` (the one breaker/retry/fallback mechanism),
along the profile's provider and fallback chain. No database connection is held during a call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from shared.config.models import AppConfig
from shared.genlayers import cache, ledger
from shared.genlayers.limits import enforce_limits
from shared.genlayers.profiles import CompiledProfile, get_profile
from shared.genlayers.structured import GenerationError, run
from shared.providers.llm import LLMRequest, LLMResult, Message, Usage, get_llm
from shared.providers.resilience import (
    AllProvidersFailed,
    CallPolicy,
    Candidate,
    FailureKind,
    FallbackChain,
    ProviderError,
    default_chain,
)

if TYPE_CHECKING:
    import psycopg

ConnFactory = Callable[[], AbstractContextManager["psycopg.Connection[Any]"]]  # psycopg loads lazily


class InputTooLarge(GenerationError):
    status, slug, title = 413, "input-too-large", "Input too large"


class ProviderUnavailable(GenerationError):
    status, slug, title = 503, "provider-unavailable", "The model provider is unavailable"


class ProviderTimeout(ProviderUnavailable):
    status, slug, title = 504, "provider-timeout", "The model provider timed out"


class ProviderRejected(GenerationError):
    slug, title = "provider-rejected", "The model provider rejected the request"


@dataclass
class Context:
    user_id: int | None = None
    session_id: str | None = None
    feature: str | None = None  # overrides the profile's feature (orchestrated sub-calls)


@dataclass
class Call:
    provider: str
    model: str
    usage: Usage
    latency_ms: float
    finish_reason: str


@dataclass
class GenerationResult:
    profile: str
    output: Any
    cached: bool = False
    provider: str | None = None
    model: str | None = None
    attempts: int = 0
    calls: list[Call] = field(default_factory=list)
    cost_usd: float = 0.0
    sources: list[dict[str, Any]] = field(default_factory=list)
    steps: dict[str, Any] = field(default_factory=dict)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for c in self.calls:
            total.add(c.usage)
        return total

    def usage_dict(self) -> dict[str, Any]:
        u = self.usage
        return {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "cached_tokens": u.cached_tokens,
            "total_tokens": u.total_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "calls": len(self.calls),
            "attempts": self.attempts,
        }


def _default_conn() -> AbstractContextManager[psycopg.Connection[Any]]:
    from shared.db.connection import get_database

    return get_database().connection()


class Generator:
    def __init__(
        self,
        *,
        chain: FallbackChain | None = None,
        connection: ConnFactory | None = None,
        config: Callable[[], AppConfig] | None = None,
        memory_search: Callable[..., list[Any]] | None = None,
    ) -> None:
        self._chain = chain
        self.memory_search = memory_search  # default: shared.memory37.search.search_memory
        self.connection = connection or _default_conn
        self._config = config

    @property
    def chain(self) -> FallbackChain:
        return self._chain or default_chain()

    def config(self) -> AppConfig:
        if self._config is not None:
            return self._config()
        from shared.config.store import get_config

        return get_config()

    # --- entry point -------------------------------------------------------------
    def generate(
        self, profile: str, data: str | dict[str, Any], ctx: Context | None = None
    ) -> GenerationResult:
        ctx = ctx or Context()
        cfg = self.config()
        compiled = get_profile(profile, cfg)
        size = len(data) if isinstance(data, str) else len(json.dumps(data, ensure_ascii=False))
        limit = cfg.logic.genlayers.max_input_chars
        if size > limit:
            raise InputTooLarge(f"input is {size} characters; profile {profile!r} accepts at most {limit}")
        if compiled.profile.plan is not None:
            from shared.genlayers.orchestrator import run_plan

            return run_plan(self, compiled, data, ctx)
        return self.generate_one(compiled, compiled.variables_for(data), ctx, cfg)

    def generate_one(
        self, compiled: CompiledProfile, values: dict[str, Any], ctx: Context, cfg: AppConfig
    ) -> GenerationResult:
        p = compiled.profile
        request, sources = self.prepare(compiled, values, ctx)
        provider = compiled.candidates[0][0]
        key = None
        if p.cache != "off":
            key = cache.cache_key(provider, request, user_id=ctx.user_id if p.cache == "user" else None)
        with self.connection() as conn:
            if key is not None:
                conn.execute(ledger.ASYNC_COMMIT)  # the hit counter update need not wait for a disk sync
                hit = cache.get(conn, key)
                if hit is not None:
                    return GenerationResult(
                        compiled.name,
                        hit["output"],
                        cached=True,
                        provider=hit["provider"],
                        model=hit["model"],
                        sources=sources,
                    )
            enforce_limits(
                conn, user_id=ctx.user_id, session_id=ctx.session_id, limits=cfg.logic.genlayers.limits
            )
        result = GenerationResult(compiled.name, None, sources=sources)
        feature = ctx.feature or p.feature
        failure: GenerationError | None = None
        try:
            value, last, attempts = run(
                self._caller(compiled, request, cfg),
                request.messages,
                validator=compiled.output_validator(),
                retries=p.retries,
                on_attempt=lambda r: result.calls.append(
                    Call(r.provider, r.model, r.usage, r.latency_ms, r.finish_reason)
                ),
                extra_check=_citation_check(compiled, sources),
            )
        except GenerationError as exc:
            failure = exc
            raise
        finally:
            if result.calls:
                result.cost_usd = self._record(result.calls, compiled, ctx, feature)
            if failure is not None:  # an orchestrator counts the tokens of failed subtasks too
                failure.calls, failure.cost_usd = list(result.calls), result.cost_usd
            _emit(compiled, result)
        result.output, result.provider, result.model, result.attempts = (
            value,
            last.provider,
            last.model,
            attempts,
        )
        if key is not None:
            with self.connection() as conn:
                conn.execute(ledger.ASYNC_COMMIT)
                cache.put(
                    conn,
                    key,
                    profile=compiled.name,
                    provider=last.provider,
                    model=last.model,
                    output=value,
                    usage=result.usage_dict(),
                    ttl_seconds=p.cache_ttl_seconds,
                )
        return result

    def prepare(
        self, compiled: CompiledProfile, values: dict[str, Any], ctx: Context
    ) -> tuple[LLMRequest, list[dict[str, Any]]]:
        """The first request of a generation (memory chunks injected), for the primary provider."""
        p = compiled.profile
        sources: list[dict[str, Any]] = []
        system = p.system_prompt
        if p.memory is not None:
            from shared.genlayers.retrieval import retrieve, sources_block

            sources = retrieve(self.connection, compiled, values, ctx.user_id, search=self.memory_search)
            system = (system + "\n\n" + sources_block(sources)).strip()
        request = LLMRequest(
            model=compiled.candidates[0][1],
            messages=(Message("user", compiled.render(values)),),
            system=system,
            temperature=p.temperature,
            max_tokens=p.max_tokens,
            schema=compiled.schema,
            schema_name=compiled.schema_name,
            strict=p.strict,
            api=p.api,
        )
        return request, sources

    # --- provider calls ----------------------------------------------------------
    def _caller(
        self, compiled: CompiledProfile, request: LLMRequest, cfg: AppConfig
    ) -> Callable[[tuple[Message, ...]], LLMResult]:
        g = cfg.logic.genlayers
        policy = CallPolicy(
            budget_seconds=g.call_budget_seconds,
            max_attempts=g.max_attempts_per_provider,
            backoff_base=0.2,
            backoff_max=2.0,
            rate_limit_wait_max=g.rate_limit_wait_max_seconds,
        )
        timeout = compiled.profile.timeout_seconds

        def call(messages: tuple[Message, ...]) -> LLMResult:
            candidates = []
            for name, model in compiled.candidates:
                req = replace(request, model=model, messages=messages)

                def attempt(remaining: float, name: str = name, req: LLMRequest = req) -> LLMResult:
                    settings = cfg.logic.providers[name]
                    llm = get_llm(name, settings)
                    return llm.generate(req, timeout=min(remaining, timeout or settings.timeout_seconds))

                candidates.append(Candidate(name, attempt))
            try:
                _, result = self.chain.call(candidates, policy)
            except AllProvidersFailed as exc:
                _log_failure(compiled.name, str(exc))
                raise _unavailable(exc) from exc
            except ProviderError as exc:  # CLIENT: the provider refused the request itself
                _log_failure(compiled.name, str(exc))
                raise ProviderRejected(f"{exc} (the provider rejected the request)") from exc
            return result

        return call

    def _record(self, calls: list[Call], compiled: CompiledProfile, ctx: Context, feature: str) -> float:
        total = 0.0
        with self.connection() as conn:
            conn.execute(ledger.ASYNC_COMMIT)
            for c in calls:
                total += ledger.record_usage(
                    conn,
                    user_id=ctx.user_id,
                    session_id=ctx.session_id,
                    feature=feature,
                    domain=compiled.domain,
                    provider=c.provider,
                    model=c.model,
                    prompt_tokens=c.usage.prompt_tokens,
                    completion_tokens=c.usage.completion_tokens,
                    cached_tokens=c.usage.cached_tokens,
                    latency_ms=c.latency_ms,
                    meta={"profile": compiled.name, "finish_reason": c.finish_reason},
                )
        return total


def _log_failure(profile: str, error: str) -> None:
    from shared.observability.logging import get_logger

    get_logger().warning("generation provider failure", extra={"profile": profile, "error": error[:500]})


def _unavailable(exc: AllProvidersFailed) -> ProviderUnavailable:
    timed_out = exc.budget_exhausted or any("timed out" in str(e) or "Timeout" in str(e) for e in exc.errors)
    misconfigured = exc.errors and all(e.kind is FailureKind.AUTH for e in exc.errors)
    cls = ProviderTimeout if timed_out and not misconfigured else ProviderUnavailable
    retry = exc.retry_after
    err = cls(str(exc), retry_after=retry)
    return err


def _citation_check(
    compiled: CompiledProfile, sources: list[dict[str, Any]]
) -> Callable[[Any], list[str]] | None:
    memory = compiled.profile.memory
    if memory is None or not memory.citations_field:
        return None
    known = {str(s["id"]) for s in sources}
    field_name = memory.citations_field

    def check(value: Any) -> list[str]:
        cited = value.get(field_name, []) if isinstance(value, dict) else []
        bad = [c for c in cited if str(c) not in known]
        if not bad:
            return []
        return [f"$.{field_name}: {bad!r} are not ids of the provided sources; cite only {sorted(known)!r}"]

    return check


def _emit(compiled: CompiledProfile, result: GenerationResult) -> None:
    from shared.observability.logging import get_logger

    u = result.usage
    try:
        from shared.observability.metrics import MetricUnit, add_metric

        add_metric("Generations", 1)
        add_metric("GenerationCalls", len(result.calls))
        add_metric("PromptTokens", u.prompt_tokens)
        add_metric("CompletionTokens", u.completion_tokens)
        for c in result.calls:
            add_metric("LLMProviderLatency", c.latency_ms, MetricUnit.Milliseconds)
    except Exception:  # noqa: S110 - metrics never break a call
        pass
    # Prompts and outputs are never logged: only sizes, tokens and outcome.
    get_logger().info(
        "generation",
        extra={
            "profile": compiled.name,
            "calls": [(c.provider, c.model, c.finish_reason, round(c.latency_ms)) for c in result.calls],
            # (keys naming "token" would be redacted as secrets)
            "usage": {
                "prompt": u.prompt_tokens,
                "completion": u.completion_tokens,
                "cached": u.cached_tokens,
            },
            "cost_usd": round(result.cost_usd, 8),
        },
    )


_generator: Generator | None = None


def get_generator() -> Generator:
    global _generator
    if _generator is None:
        _generator = Generator()
    return _generator


def set_generator(generator: Generator | None) -> None:
    """Replace the process-wide generator (tests, benches)."""
    global _generator
    _generator = generator
