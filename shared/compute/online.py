"""The online provider router: a ``high``-priority task runs now, inside a time budget.

Per task kind, ``compute.online.<kind>.providers`` in logic.yaml names providers (entries under
``providers:``) tried in order through ``shared.providers.resilience.FallbackChain`` — the one
breaker / retry / budget mechanism of the project: retries with jittered backoff only inside the
budget, a circuit breaker per provider, 429 → a ``Retry-After`` cooldown, 401/403 → misconfigured,
other 4xx → the caller's error (raised, no fallback). A provider that cannot be built (key or URL
not set) counts as misconfigured, so an unset fallback costs nothing after the first call.

Adapters come from ``shared.providers.factory`` (``build_embedder`` / ``build_reranker``). One that
takes ``timeout=`` gets the budget left; one that does not runs on a helper thread and is abandoned
when the budget runs out, so the budget holds whatever the adapter does.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from shared.config.models import ComputeOnlineRoute, ComputeSection
from shared.providers.embeddings import EmbeddingError
from shared.providers.rerank import RerankError, RerankResult
from shared.providers.resilience import (
    CallPolicy,
    Candidate,
    FailureKind,
    FallbackChain,
    ProviderError,
    default_chain,
)


class UnknownOnlineKind(ValueError):
    """No ``compute.online`` route for this kind."""


@dataclass(frozen=True)
class OnlineResult:
    provider: str
    output: dict[str, Any]
    latency_ms: float


# A call of one provider for one kind: (provider name, payload, seconds left) → output dict.
ProviderCall = Callable[[str, dict[str, Any], float], dict[str, Any]]

_pool: ThreadPoolExecutor | None = None
_accepts_timeout: dict[Any, bool] = {}


def _with_deadline(fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn`` but give up after ``timeout`` seconds (for adapters without a timeout parameter)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="online-call")
    future = _pool.submit(fn)
    try:
        return future.result(timeout=max(timeout, 0.001))
    except FutureTimeout as exc:
        future.cancel()
        raise TimeoutError(f"no answer within {timeout:.3f}s") from exc


def _call(method: Callable[..., Any], timeout: float, *args: Any, **kwargs: Any) -> Any:
    func = getattr(method, "__func__", method)
    takes = _accepts_timeout.get(func)
    if takes is None:
        try:
            takes = "timeout" in inspect.signature(method).parameters
        except (TypeError, ValueError):
            takes = False
        _accepts_timeout[func] = takes
    if takes:
        return method(*args, timeout=timeout, **kwargs)
    return _with_deadline(lambda: method(*args, **kwargs), timeout)


def _misconfigured(name: str, exc: Exception) -> ProviderError:
    return ProviderError(name, FailureKind.AUTH, f"not configured: {exc}")


def call_embed(name: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    from shared.providers.factory import build_embedder

    try:
        embedder = build_embedder(name)
    except (EmbeddingError, KeyError, ValueError) as exc:
        raise _misconfigured(name, exc) from exc
    texts = payload.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ProviderError(name, FailureKind.CLIENT, "texts: a non-empty list of strings is required")
    vectors = _call(embedder.embed, timeout, texts)
    return {"embeddings": vectors, "model": embedder.model, "dimension": len(vectors[0]) if vectors else 0}


def call_rerank(name: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    from shared.providers.factory import build_reranker

    try:
        reranker = build_reranker(name)
    except (RerankError, KeyError, ValueError) as exc:
        raise _misconfigured(name, exc) from exc
    if reranker is None:
        raise _misconfigured(name, RerankError("no reranker"))
    query, documents, top_n = payload.get("query"), payload.get("documents"), payload.get("top_n")
    if not isinstance(query, str) or not isinstance(documents, list):
        raise ProviderError(name, FailureKind.CLIENT, "query (string) and documents (list) are required")
    results = _call(reranker.rerank, timeout, query, documents, top_n)
    return {"results": [{"index": r.index, "score": r.score} for r in results], "model": reranker.model}


DEFAULT_CALLS: dict[str, ProviderCall] = {"embed": call_embed, "rerank": call_rerank}


class OnlineRouter:
    """``run(kind, payload)`` → the first provider's answer inside the kind's budget."""

    def __init__(
        self,
        chain: FallbackChain | None = None,
        *,
        section: ComputeSection | None = None,
        calls: dict[str, ProviderCall] | None = None,
    ) -> None:
        self._chain = chain
        self._section = section
        self.calls = dict(DEFAULT_CALLS if calls is None else calls)

    @property
    def chain(self) -> FallbackChain:
        return self._chain or default_chain()

    def route(self, kind: str) -> ComputeOnlineRoute:
        if self._section is not None:
            section = self._section
        else:
            from shared.compute.kinds import compute_settings

            section = compute_settings()
        route = section.online.get(kind)
        if route is None or kind not in self.calls:
            raise UnknownOnlineKind(f"no online route for task kind {kind!r}")
        return route

    def run(self, kind: str, payload: dict[str, Any]) -> OnlineResult:
        """Raises ``AllProvidersFailed`` (with per-provider reasons) or a CLIENT ``ProviderError``."""
        route = self.route(kind)
        call = self.calls[kind]
        candidates = [Candidate(name, _bind(call, name, payload)) for name in route.providers]
        policy = CallPolicy(budget_seconds=route.budget_seconds, max_attempts=route.max_attempts)
        started = time.perf_counter()
        provider, output = self.chain.call(candidates, policy)
        return OnlineResult(provider, output, (time.perf_counter() - started) * 1000)

    def breaker_states(self) -> dict[str, str]:
        return self.chain.breakers.states()


def _bind(call: ProviderCall, name: str, payload: dict[str, Any]) -> Callable[[float], dict[str, Any]]:
    return lambda timeout: call(name, payload, timeout)


_router: OnlineRouter | None = None


def get_router() -> OnlineRouter:
    global _router
    if _router is None:
        _router = OnlineRouter()
    return _router


def embed_online(texts: Sequence[str], *, router: OnlineRouter | None = None) -> list[list[float]]:
    """Dense unit vectors for ``texts`` now (RunPod first, then the configured fallbacks)."""
    out = (router or get_router()).run("embed", {"texts": list(texts)}).output
    return list(out["embeddings"])


def rerank_online(
    query: str, documents: Sequence[str], top_n: int | None = None, *, router: OnlineRouter | None = None
) -> list[RerankResult]:
    out = (
        (router or get_router())
        .run("rerank", {"query": query, "documents": list(documents), "top_n": top_n})
        .output
    )
    return [RerankResult(int(r["index"]), float(r["score"])) for r in out["results"]]
