"""The rerank seam. Adapters: local cross-encoder, RunPod, Together."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass


class RerankError(RuntimeError):
    pass


@dataclass(frozen=True)
class RerankResult:
    index: int  # position in the documents passed in
    score: float  # higher is more relevant (sigmoid-normalised in [0, 1] unless an adapter says otherwise)


class Reranker(ABC):
    model: str

    @abstractmethod
    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> list[RerankResult]:
        """Scores sorted best first, at most ``top_n`` of them."""
