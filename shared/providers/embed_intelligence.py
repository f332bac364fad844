"""``intelligence_api``: a generic HTTP embedding service speaking OpenAI's embeddings wire format.

Wire format (see README, Compute): ``POST {base_url}/embeddings`` with ``Authorization: Bearer <key>``
and ``{"model": str, "input": [str, ...]}`` (optionally ``"encoding_format": "float" | "base64"``);
the answer is ``{"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...]}],
"model": str, "usage": {...}}``. Errors are HTTP statuses: 401/403 bad key, 429 with ``Retry-After``,
4xx bad input, 5xx transient. The gpu_handlers engine serves exactly this through ``openai_route``.

The official ``openai`` client does the HTTP (retries off: the compute router's ``FallbackChain`` owns
retries, backoff and the time budget); ``embed(texts, timeout=...)`` honours a per-call deadline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from shared.config import env
from shared.config.models import ProviderSettings
from shared.providers.embed_openai import OpenAIEmbedder, _normalise
from shared.providers.embeddings import EmbeddingError


class OpenAICompatibleEmbedder(OpenAIEmbedder):
    """An OpenAI-compatible embeddings endpoint with a per-call timeout and no SDK-level retries."""

    default_base_url: str | None = None
    default_key_env: str = ""
    default_base_url_env: str | None = None
    label = "embedding provider"

    @classmethod
    def from_settings(
        cls, name: str, settings: ProviderSettings, *, default_model: str | None = None
    ) -> OpenAICompatibleEmbedder:
        opts = dict(settings.options)
        key_env = settings.api_key_env or cls.default_key_env
        api_key = os.environ.get(key_env) or None
        if not api_key:
            raise EmbeddingError(
                f"{key_env} is not set: the API key of {cls.label} {name!r}. "
                f"Set the environment variable {key_env}."
            )
        url_env = opts.get("base_url_env") or cls.default_base_url_env
        base_url = settings.base_url or (os.environ.get(url_env) if url_env else None) or cls.default_base_url
        if not base_url:
            raise EmbeddingError(
                f"{url_env} is not set: the base URL of {cls.label} {name!r}. "
                f"Set the environment variable {url_env}."
            )
        return cls(
            settings.model or default_model or "bge-m3",
            api_key=api_key,
            base_url=base_url,
            dimensions=opts.get("dimensions"),
            batch_size=int(opts.get("batch_size", 128)),
            timeout_seconds=settings.timeout_seconds,
            max_retries=int(opts.get("max_retries", 0)),
        )

    def _call_timeout(self, batch: list[str], timeout: float | None) -> list[list[float]]:
        kwargs: dict[str, Any] = {"model": self.model, "input": batch}
        if self.dimensions_param:
            kwargs["dimensions"] = self.dimensions_param
        if timeout is not None:
            kwargs["timeout"] = max(timeout, 0.001)
        response = self.client.embeddings.create(**kwargs)  # errors propagate for resilience.classify
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(batch):
            raise EmbeddingError(f"{self.model}: asked for {len(batch)} vectors, got {len(data)}")
        vectors = [_normalise(d.embedding) for d in data]
        if len({len(v) for v in vectors}) != 1:
            raise EmbeddingError(f"{self.model}: vectors of different dimensions")
        self._dimension = len(vectors[0])
        return vectors

    def embed(self, texts: Sequence[str], *, timeout: float | None = None) -> list[list[float]]:
        out: list[list[float]] = []
        items = list(texts)
        for start in range(0, len(items), self.batch_size):
            out.extend(self._call_timeout(items[start : start + self.batch_size], timeout))
        return out


class IntelligenceAPIEmbedder(OpenAICompatibleEmbedder):
    default_key_env = env.INTELLIGENCE_API_KEY.name
    default_base_url_env = env.INTELLIGENCE_API_URL.name
    label = "intelligence_api provider"
