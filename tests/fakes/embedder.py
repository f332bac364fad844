"""A fast deterministic in-process embedder for memory tests that do not need the real model."""

from __future__ import annotations

from collections.abc import Sequence

from shared.providers.embeddings import Embedder
from tests.fakes.openai_embeddings import fake_vector


class HashEmbedder(Embedder):
    def __init__(self, model: str = "test-hash-64", dimension: int = 64) -> None:
        self.model, self.dimension = model, dimension
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        return [fake_vector(t, self.dimension) for t in texts]
