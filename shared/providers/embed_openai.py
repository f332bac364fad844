"""OpenAI embeddings through the official ``openai`` client (any OpenAI-compatible ``base_url`` too).

The SDK asks for ``encoding_format=base64`` by default and decodes it; vectors are L2-normalised here so
cosine search behaves the same whatever the provider returns. Inputs go out in batches of ``batch_size``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from shared.config import env
from shared.config.models import ProviderSettings
from shared.providers.embeddings import Embedder, EmbeddingError

KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def _normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0 or not math.isfinite(norm):
        raise EmbeddingError("provider returned a zero or non-finite vector")
    return [float(x) / norm for x in vector]


class OpenAIEmbedder(Embedder):
    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 256,
        timeout_seconds: float = 30.0,
        max_retries: int = 2,
        client: Any = None,
    ) -> None:
        self.model = model
        self.dimensions_param = dimensions
        self._dimension = dimensions or KNOWN_DIMENSIONS.get(model)
        self.batch_size = batch_size
        if client is None:
            from openai import OpenAI

            client = OpenAI(
                api_key=env.OPENAI_API_KEY.require(api_key),
                base_url=env.OPENAI_BASE_URL.get(base_url),
                timeout=timeout_seconds,
                max_retries=max_retries,
            )
        self.client = client

    @classmethod
    def from_settings(
        cls, name: str, settings: ProviderSettings, *, default_model: str | None = None
    ) -> OpenAIEmbedder:
        opts = dict(settings.options)
        key_env = settings.api_key_env or env.OPENAI_API_KEY.name
        api_key = os.environ.get(key_env) or None
        if not api_key:
            raise EmbeddingError(
                f"{key_env} is not set: the API key of embedding provider {name!r}. "
                f"Set the environment variable {key_env}."
            )
        return cls(
            settings.model or "text-embedding-3-small",
            api_key=api_key,
            base_url=settings.base_url,
            dimensions=opts.get("dimensions"),
            batch_size=int(opts.get("batch_size", 256)),
            timeout_seconds=settings.timeout_seconds,
            max_retries=int(opts.get("max_retries", 2)),
        )

    @property
    def dimension(self) -> int:  # type: ignore[override]
        if self._dimension is None:
            self._dimension = len(self.embed_query("dimension probe"))
        return self._dimension

    def _call(self, batch: list[str]) -> list[list[float]]:
        kwargs: dict[str, Any] = {"model": self.model, "input": batch}
        if self.dimensions_param:
            kwargs["dimensions"] = self.dimensions_param
        response = self.client.embeddings.create(**kwargs)  # errors propagate for resilience.classify
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(batch):
            raise EmbeddingError(f"{self.model}: asked for {len(batch)} vectors, got {len(data)}")
        vectors = [_normalise(d.embedding) for d in data]
        dims = {len(v) for v in vectors}
        if len(dims) != 1:
            raise EmbeddingError(f"{self.model}: vectors of different dimensions {sorted(dims)}")
        self._dimension = dims.pop()
        return vectors

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        items = list(texts)
        for start in range(0, len(items), self.batch_size):
            out.extend(self._call(items[start : start + self.batch_size]))
        return out
