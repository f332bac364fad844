"""Together AI rerank: ``POST {base_url}/rerank`` (httpx; Together's SDK is not needed for one call).

Request ``{"model", "query", "documents": [str], "top_n", "return_documents": false}``; answer
``{"results": [{"index": i, "relevance_score": float}, ...]}`` sorted best first. HTTP errors raise
``httpx.HTTPStatusError`` so ``resilience.classify`` reads the status (and ``Retry-After`` on 429).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import httpx

from shared.config import env
from shared.config.models import ProviderSettings
from shared.providers.rerank import Reranker, RerankError, RerankResult

TOGETHER_BASE_URL = "https://api.together.xyz/v1"


class TogetherReranker(Reranker):
    def __init__(
        self,
        model: str = "Salesforce/Llama-Rank-V1",
        *,
        api_key: str,
        base_url: str = TOGETHER_BASE_URL,
        timeout_seconds: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.model = model
        self.url = base_url.rstrip("/") + "/rerank"
        self.timeout = timeout_seconds
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_seconds, transport=transport
        )

    def __repr__(self) -> str:  # never shows the key
        return f"TogetherReranker({self.model!r}, {self.url!r})"

    @classmethod
    def from_settings(
        cls, name: str, settings: ProviderSettings, *, default_model: str | None = None
    ) -> TogetherReranker:
        key_env = settings.api_key_env or env.TOGETHER_API_KEY.name
        api_key = os.environ.get(key_env)
        if not api_key:
            raise RerankError(
                f"{key_env} is not set: the API key of rerank provider {name!r}. "
                f"Set the environment variable {key_env}."
            )
        return cls(
            settings.model or default_model or "Salesforce/Llama-Rank-V1",
            api_key=api_key,
            base_url=settings.base_url or TOGETHER_BASE_URL,
            timeout_seconds=settings.timeout_seconds,
        )

    def rerank(
        self, query: str, documents: Sequence[str], top_n: int | None = None, *, timeout: float | None = None
    ) -> list[RerankResult]:
        if not documents:
            return []
        body: dict[str, Any] = {
            "model": self.model,
            "query": query,
            "documents": list(documents),
            "return_documents": False,
        }
        if top_n is not None:
            body["top_n"] = top_n
        response = self._http.post(self.url, json=body, timeout=max(timeout or self.timeout, 0.001))
        response.raise_for_status()
        try:
            items = response.json()["results"]
            results = [RerankResult(int(r["index"]), float(r["relevance_score"])) for r in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise RerankError(
                f"Together rerank answered an unexpected body: {response.text[:200]!r}"
            ) from exc
        if any(not 0 <= r.index < len(documents) for r in results):
            raise RerankError("Together rerank answered an index outside the documents")
        results.sort(key=lambda r: r.score, reverse=True)
        return results[:top_n] if top_n is not None else results
