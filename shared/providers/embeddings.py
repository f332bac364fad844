"""The embeddings seam. Adapters: local sentence-transformers, OpenAI, RunPod, Together, intelligence_api."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence


class EmbeddingError(RuntimeError):
    """An embedder could not produce vectors (bad config, provider failure, model with no vectors)."""


class Embedder(ABC):
    """Turns texts into L2-normalised dense vectors of a fixed dimension.

    ``model`` is the name recorded next to every stored vector, so two models can coexist.
    """

    model: str
    dimension: int

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order. Raises ``EmbeddingError`` on failure (never a partial result)."""

    def embed_query(self, text: str) -> list[float]:
        """A query vector; adapters whose model wants a query prefix override this."""
        return self.embed([text])[0]
